-- the analytics table of each replica tails the requests of all of them in insertion order
CREATE SEQUENCE requests_seq;
ALTER TABLE requests ADD COLUMN seq bigint NOT NULL DEFAULT nextval('requests_seq');
CREATE INDEX requests_seq_idx ON requests (seq);
CREATE INDEX feedback_ts ON feedback (ts);
