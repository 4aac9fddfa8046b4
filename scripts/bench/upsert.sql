\set uid random(0, :tenants - 1)
\set api random(1000, 99999)
INSERT INTO floor_sessions (id, user_id, session_id, api_id, api_hash_encrypted, phone_encrypted, session_data_encrypted, data_key_id)
VALUES (gen_random_uuid(), 'bench' || lpad(:uid::text, 7, '0'), 'sid' || lpad(:uid::text, 7, '0'), :api, gen_random_bytes(65), gen_random_bytes(45), gen_random_bytes(383), 1)
ON CONFLICT (user_id) DO UPDATE SET api_id = excluded.api_id, api_hash_encrypted = excluded.api_hash_encrypted,
  phone_encrypted = excluded.phone_encrypted, session_data_encrypted = excluded.session_data_encrypted,
  version = floor_sessions.version + 1, updated_at = now();
