DROP INDEX api_tokens_live_name_key;
-- Fails while two rows share a name (a name reused after revocation).
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_name_key UNIQUE (name);
DROP INDEX session_activity_session_id_idx;
