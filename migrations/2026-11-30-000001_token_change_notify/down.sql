DROP TRIGGER IF EXISTS api_tokens_truncated ON api_tokens;
DROP TRIGGER IF EXISTS api_tokens_changed ON api_tokens;
DROP FUNCTION IF EXISTS vibee_tokens_changed();
