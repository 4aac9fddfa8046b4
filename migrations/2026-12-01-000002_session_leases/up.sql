-- One live client per Telegram session. The database clock
-- (now()) decides when a lease has expired; nobody's local clock does.

-- Fences come from one sequence: it is never reset by a purge, a
-- re-create, a rotation or a restart, so a fence is never handed out twice
-- and every change of hands gets a larger one than any before it.
CREATE SEQUENCE session_lease_fence AS bigint START 1 NO CYCLE;

-- At most one row per session. A released lease is deleted; an expired one
-- stays until someone takes it (and then names its prior holder).
CREATE TABLE session_leases (
    session_id text PRIMARY KEY
        REFERENCES user_sessions (session_id) ON DELETE CASCADE ON UPDATE CASCADE,
    holder text NOT NULL,
    fence bigint NOT NULL CHECK (fence > 0),
    -- When this holder took it (unchanged by renewals).
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- Who held it before the last change of hands (NULL when it was free).
    prior_holder text
);

CREATE INDEX session_leases_holder_idx ON session_leases (holder);

-- Boot loaders (`boot --all`) announce themselves here, so each can take a
-- fair share (active sessions / live loaders).
CREATE TABLE lease_holders (
    holder text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
