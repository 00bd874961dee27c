-- tenant walls: a key belongs to a team; feedback records the key that gave it
ALTER TABLE virtual_keys ADD COLUMN team text;
UPDATE virtual_keys SET team = metadata->>'team' WHERE team IS NULL;
ALTER TABLE feedback ADD COLUMN key_id text;
CREATE INDEX requests_key_ts ON requests (key_id, ts);
