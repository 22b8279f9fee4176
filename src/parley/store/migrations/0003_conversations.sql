-- Conversations, their members and messages.
CREATE TABLE conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL CHECK (kind IN ('direct', 'group')),
    title           text,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    -- The two members of a direct conversation, smaller id first: one direct conversation per
    -- pair, whoever creates it first, is enforced by the unique index below.
    direct_low      uuid,
    direct_high     uuid,
    inserted_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'direct') = (direct_low IS NOT NULL AND direct_high IS NOT NULL)),
    CHECK (direct_low < direct_high)
);
CREATE UNIQUE INDEX conversations_direct_pair_key ON conversations (direct_low, direct_high)
    WHERE kind = 'direct';

CREATE TABLE members (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    joined_at       timestamptz NOT NULL DEFAULT now(),
    last_read_seq   bigint NOT NULL DEFAULT 0,
    muted           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (conversation_id, user_id)
);
-- "My conversations" lists start from the user.
CREATE INDEX members_user_idx ON members (user_id, conversation_id);

CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    sender_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    body            text NOT NULL,
    client_id       text,
    inserted_at     timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    deleted_at      timestamptz,
    -- History pages and catch-up read by (conversation_id, seq); it is also what keeps seq unique.
    CONSTRAINT messages_conversation_seq_key UNIQUE (conversation_id, seq),
    CONSTRAINT messages_client_id_key UNIQUE (conversation_id, sender_id, client_id)
);
