-- processed_messages: the inbox. A consumer records a message id in the same transaction as the
-- events it appends for it, so a redelivered message is recognised and has no second effect.
CREATE TABLE processed_messages (
    consumer     TEXT    NOT NULL,
    message_id   BLOB    NOT NULL CHECK (length(message_id) = 16),
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, message_id)
) WITHOUT ROWID;
