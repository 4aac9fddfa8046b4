DROP TABLE api_tokens;
DROP TABLE session_activity;
DROP TABLE user_sessions;
DROP TABLE master_key_kdf;
DROP TABLE encryption_keys;
