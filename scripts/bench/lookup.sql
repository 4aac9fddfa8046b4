\set uid random(0, :tenants - 1)
SELECT * FROM user_sessions WHERE user_id = 'bench' || lpad(:uid::text, 7, '0');
