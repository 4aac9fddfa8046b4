// Command bridge makes the HTTP calls of the gotd/td session.Storage in
// docs/BRIDGE_INTEGRATION.md against a real vibee-sessions server, with the
// standard library only (gotd's module cannot be fetched here): the same
// requests, the same status checks, and the conditional and clearing calls
// the doc describes. It exits non-zero, saying what failed, on any
// difference.
//
//	go run ./tests/clients/bridge BASE_URL SESSION_ID TOKEN
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

// errNotFound stands for gotd's session.ErrNotFound.
var errNotFound = errors.New("session storage: not found")

// Storage is the doc's vibeestore.Storage, method for method.
type Storage struct {
	BaseURL   string
	SessionID string
	Token     string
	Client    *http.Client
}

func (s *Storage) endpoint() string {
	return s.BaseURL + "/api/v1/sessions/" + url.PathEscape(s.SessionID) + "/data"
}

func (s *Storage) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return http.DefaultClient
}

func (s *Storage) LoadSession(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("vibee-sessions: load session: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	case http.StatusNotFound:
		return nil, errNotFound
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("vibee-sessions: load session: %s: %s", resp.Status, msg)
	}
}

func (s *Storage) StoreSession(ctx context.Context, data []byte) error {
	_, err := s.Store(ctx, data, "")
	return err
}

func (s *Storage) Store(ctx context.Context, data []byte, ifMatch string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.endpoint(), bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("vibee-sessions: store session: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("vibee-sessions: store session: %s: %s", resp.Status, msg)
	}
	return resp.Header.Get("ETag"), nil
}

func (s *Storage) Clear(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.endpoint(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("vibee-sessions: clear session: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("vibee-sessions: clear session: %s: %s", resp.Status, msg)
	}
	return nil
}

func must(ok bool, format string, args ...any) {
	if !ok {
		fmt.Fprintf(os.Stderr, "bridge: "+format+"\n", args...)
		os.Exit(1)
	}
}

func main() {
	must(len(os.Args) == 4, "usage: bridge BASE_URL SESSION_ID TOKEN")
	s := &Storage{BaseURL: os.Args[1], SessionID: os.Args[2], Token: os.Args[3]}
	ctx := context.Background()

	// A fresh bridge: nothing stored yet, gotd logs in and stores.
	_, err := s.LoadSession(ctx)
	must(errors.Is(err, errNotFound), "first load: want not found, got %v", err)
	// A real Telethon/gotd session file is tens of KiB.
	first := bytes.Repeat([]byte{0, 1, 2, 250, 251, 255}, 69*1024/6)
	err = s.StoreSession(ctx, first)
	must(err == nil, "store: %v", err)
	got, err := s.LoadSession(ctx)
	must(err == nil && bytes.Equal(got, first), "load after store: %d bytes, %v", len(got), err)

	// The auth key changes: a conditional replace with the current ETag.
	etag, err := s.Store(ctx, []byte("second key"), "")
	must(err == nil && etag != "", "replace: etag %q, %v", etag, err)
	next, err := s.Store(ctx, []byte("third key"), etag)
	must(err == nil && next != etag, "conditional replace: etag %q, %v", next, err)
	_, err = s.Store(ctx, []byte("lost update"), etag)
	must(err != nil && bytes.Contains([]byte(err.Error()), []byte("412")), "stale If-Match: want 412, got %v", err)
	got, _ = s.LoadSession(ctx)
	must(string(got) == "third key", "after the refused write: %q", got)

	// Past the cap: 413.
	err = s.StoreSession(ctx, make([]byte, 1<<20+1))
	must(err != nil && bytes.Contains([]byte(err.Error()), []byte("413")), "over 1 MiB: want 413, got %v", err)

	// Log out: the dead key is cleared, the next load is a fresh login.
	must(s.Clear(ctx) == nil, "clear")
	_, err = s.LoadSession(ctx)
	must(errors.Is(err, errNotFound), "load after clear: want not found, got %v", err)
	fmt.Println("bridge: load, store, conditional replace, 412, 413, clear: as the doc says")
}
