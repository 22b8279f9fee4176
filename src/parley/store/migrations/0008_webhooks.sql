-- Pusher webhooks (docs/pusher.md, "Webhooks"). An application may ask for its events batched
-- (several per request, as Pusher's "batch webhooks" setting) and for `subscription_count`
-- events (Pusher's subscription counting); both off by default, as on Pusher.
ALTER TABLE applications
    ADD COLUMN webhook_batching boolean NOT NULL DEFAULT false,
    ADD COLUMN webhook_subscription_count boolean NOT NULL DEFAULT false;

-- One row per webhook event, written by the recorder (in batches) and delivered by the webhook
-- deliverer of any node: claimed with FOR UPDATE SKIP LOCKED and leased by pushing
-- `next_attempt_at` ahead, so two nodes never send a row at once and a node that dies mid-request
-- only delays it. `event` is Pusher's event object ({name, channel, ...}) without `time_ms`
-- (the request's own time, set when it is sent). A row ends delivered or given up (after
-- `webhooks.give_up_seconds`), and is deleted `webhooks.keep_seconds` after it was recorded.
CREATE TABLE webhook_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id          bigint NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event           jsonb NOT NULL,
    inserted_at     timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    given_up_at     timestamptz,
    last_error      text CHECK (char_length(last_error) <= 1000)
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX webhook_outbox_app_idx ON webhook_outbox (app_id, id);
