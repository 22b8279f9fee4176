-- The message rules of `parley.actors.message_rules`, held by the database too: a path that
-- skipped them cannot store what they refuse. (NUL cannot be stored in text at all.)
-- body: non-empty unless it is a tombstone (deleted messages keep their seq with body ''), and
-- no longer than the ceiling `messages.body_max_chars` may be set to (config.py).
-- NOT VALID: enforced for every new or updated row, without refusing to start on a database that
-- already holds a row the old socket path let through (client ids of up to 100 characters).
ALTER TABLE messages
    ADD CONSTRAINT messages_body_length
        CHECK (char_length(body) <= 100000 AND (char_length(body) >= 1 OR deleted_at IS NOT NULL))
        NOT VALID,
    ADD CONSTRAINT messages_client_id_length
        CHECK (client_id IS NULL OR char_length(client_id) BETWEEN 1 AND 64)
        NOT VALID;
