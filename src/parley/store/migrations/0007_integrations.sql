-- Integrations (DESIGN §4.2, ExPusherLite): organizations, who is enrolled in them (an
-- organization's admins manage it), and the applications they own. An application is what an
-- integrating web app talks to: its numeric id (Pusher's app_id), key and secret sign triggers and
-- end-user tokens. The field rules of `parley.integrations` are held here too as CHECK constraints.
CREATE TABLE organizations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 120),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE enrollments (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    admin           boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX enrollments_user_idx ON enrollments (user_id);

-- `id` is numeric because Pusher's SDKs require it. The secret is stored as it is (it signs and
-- verifies HMACs, so it cannot be hashed); `previous_secret` keeps verifying until
-- `previous_secret_expires_at` after a rotation, and `secret_version` counts rotations, so that
-- sockets opened with a retired secret can be told apart from the others.
CREATE TABLE applications (
    id                         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id            uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 120),
    app_key                    text NOT NULL UNIQUE CHECK (app_key ~ '^[a-f0-9]{20}$'),
    app_secret                 text NOT NULL CHECK (char_length(app_secret) >= 32),
    secret_version             integer NOT NULL DEFAULT 1 CHECK (secret_version >= 1),
    previous_secret            text CHECK (char_length(previous_secret) >= 32),
    previous_secret_expires_at timestamptz,
    webhook_url                text CHECK (char_length(webhook_url) <= 2000),
    client_events              boolean NOT NULL DEFAULT false,
    max_connections            integer CHECK (max_connections >= 0),
    archived_at                timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT applications_previous_secret_expiry
        CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX applications_organization_idx ON applications (organization_id, id);
