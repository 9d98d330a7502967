-- subject_keys: crypto-shredding (annals::privacy). One data key per data subject, wrapped
-- (encrypted) by a master key that is never stored here. Forgetting a subject deletes its row:
-- its personal fields can no longer be decrypted anywhere.
CREATE TABLE subject_keys (
    subject    text  PRIMARY KEY,
    master_id  text  NOT NULL,
    wrapped    bytea NOT NULL
);
