DROP TRIGGER IF EXISTS user_sessions_data_key_live ON user_sessions;
DROP FUNCTION IF EXISTS vibee_data_key_live();
