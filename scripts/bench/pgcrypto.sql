\set uid random(0, :tenants - 1)
SELECT s.user_id, s.api_id, pgp_sym_decrypt(s.api_hash, k.key) AS api_hash,
       pgp_sym_decrypt(s.phone, k.key) AS phone, pgp_sym_decrypt_bytea(s.session_data, k.key) AS session_data
FROM legacy_sessions s CROSS JOIN legacy_key k
WHERE s.user_id = 'bench' || lpad(:uid::text, 7, '0');
