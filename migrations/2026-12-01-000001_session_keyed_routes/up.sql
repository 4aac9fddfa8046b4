-- The audit trail of one session (GET /api/v1/sessions/{session_id}/activity).
CREATE INDEX session_activity_session_id_idx ON session_activity (session_id, id DESC);

-- A revoked token's name may be given to a new token: names are unique among
-- live tokens only. The revoked row stays (its name is in the audit log).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_name_key;
CREATE UNIQUE INDEX api_tokens_live_name_key ON api_tokens (name) WHERE revoked_at IS NULL;
