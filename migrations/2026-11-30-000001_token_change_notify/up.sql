-- Running servers cache verified tokens for a few seconds (docs/SECURITY.md,
-- "Token checks"). This trigger tells every one of them, at commit, that a
-- token was revoked, deleted or changed, whatever path the change took (the
-- CLI, an operator's SQL). Touching last_used_at does not fire it.
CREATE FUNCTION vibee_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vibee_tokens', TG_OP);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_changed
    AFTER UPDATE OF name, token_hash, scopes, revoked_at OR DELETE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION vibee_tokens_changed();

CREATE TRIGGER api_tokens_truncated
    AFTER TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION vibee_tokens_changed();
