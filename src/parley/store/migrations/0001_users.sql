-- Accounts. E-mail uniqueness is case-insensitive: the unique index is on lower(email).
CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text NOT NULL,
    username        text NOT NULL,
    name            text,
    subname         text,
    job             text,
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'registered'
                    CHECK (role IN ('registered', 'moderator', 'admin')),
    token_version   integer NOT NULL DEFAULT 0,
    confirmed_at    timestamptz,
    banned_at       timestamptz,
    inserted_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE INDEX users_inserted_at_id_idx ON users (inserted_at DESC, id DESC);
