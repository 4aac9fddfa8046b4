-- No row may be written under a data key that is not `primary` or `active`:
-- a replica whose key ring is stale would otherwise seal rows
-- under a retired key, which no process loads, so nobody could read them.
-- The error has its own SQLSTATE (VBK01) and names the constraint
-- `user_sessions_data_key_live`: the service answers it by reloading its
-- key ring and sealing again.
--
-- FOR KEY SHARE waits for a retirement in flight (it locks the key row FOR
-- UPDATE) and then reads the row as that retirement left it, so a write
-- racing a retirement sees `retired` rather than slipping in behind it.
CREATE FUNCTION vibee_data_key_live() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    key_state text;
BEGIN
    SELECT state INTO key_state FROM encryption_keys WHERE id = NEW.data_key_id FOR KEY SHARE;
    -- No such key: the foreign key says so.
    IF key_state IS NOT NULL AND key_state NOT IN ('primary', 'active') THEN
        RAISE EXCEPTION 'data key % is %: no row may be written under it', NEW.data_key_id, key_state
            USING ERRCODE = 'VBK01',
                  CONSTRAINT = 'user_sessions_data_key_live',
                  TABLE = 'user_sessions',
                  COLUMN = 'data_key_id',
                  HINT = 'the writer''s key ring is stale: reload it and seal again';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER user_sessions_data_key_live
    BEFORE INSERT OR UPDATE OF data_key_id, api_hash_encrypted, phone_encrypted, session_data_encrypted
    ON user_sessions
    FOR EACH ROW EXECUTE FUNCTION vibee_data_key_live();
