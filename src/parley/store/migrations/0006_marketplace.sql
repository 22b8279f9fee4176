-- The marketplace (DESIGN §4.1): listings, their public reply threads, and the audit log of
-- moderation and admin actions. The field rules of `parley.marketplace.rules` are held here too as
-- CHECK constraints, so a path that skipped them cannot store what they refuse (the upper bound of
-- `year`, next year, moves with the clock and is the rule's alone).
CREATE TABLE listings (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seller_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 120),
    make          text NOT NULL CHECK (char_length(make) BETWEEN 1 AND 40),
    model         text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 40),
    year          integer NOT NULL CHECK (year BETWEEN 1886 AND 9999),
    price_cents   bigint NOT NULL CHECK (price_cents BETWEEN 0 AND 100000000000),
    currency      text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    mileage_km    integer CHECK (mileage_km >= 0),
    description   text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    location      text CHECK (char_length(location) <= 120),
    -- What the seller says; a moderator's hide is kept apart (hidden_at), so that unhiding brings
    -- back whatever the seller had set. The API shows "hidden" while hidden_at is set.
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'sold')),
    hidden_at     timestamptz,
    hidden_reason text,
    -- A deleted listing stays as a row (its replies and audit entries point at it) but is on no
    -- page and in no list.
    deleted_at    timestamptz,
    reply_count   integer NOT NULL DEFAULT 0 CHECK (reply_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- Full-text search over title, make, model (weight A) and description (weight B). The
    -- 'english' configuration stems ("convertibles" finds "convertible"); make and model are
    -- also matched exactly, case-insensitively, by the filters.
    search        tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector('english', title || ' ' || make || ' ' || model), 'A')
                      || setweight(to_tsvector('english', description), 'B')
                  ) STORED
);

-- Searches read only live rows (not hidden, not deleted): every index for them is partial on
-- that, and leads with status, which every search filters on (default active).
CREATE INDEX listings_search_idx ON listings USING gin (search)
    WHERE hidden_at IS NULL AND deleted_at IS NULL;
CREATE INDEX listings_newest_idx ON listings (status, created_at DESC, id DESC)
    WHERE hidden_at IS NULL AND deleted_at IS NULL;
CREATE INDEX listings_price_idx ON listings (status, price_cents, id)
    WHERE hidden_at IS NULL AND deleted_at IS NULL;
CREATE INDEX listings_make_model_idx
    ON listings (status, lower(make), lower(model), created_at DESC, id DESC)
    WHERE hidden_at IS NULL AND deleted_at IS NULL;
CREATE INDEX listings_make_price_idx ON listings (status, lower(make), price_cents, id)
    WHERE hidden_at IS NULL AND deleted_at IS NULL;
CREATE INDEX listings_make_year_idx ON listings (status, lower(make), year, created_at DESC, id DESC)
    WHERE hidden_at IS NULL AND deleted_at IS NULL;
CREATE INDEX listings_year_idx ON listings (status, year, created_at DESC)
    WHERE hidden_at IS NULL AND deleted_at IS NULL;
-- make and model are filtered together: without statistics on the pair (and on the lowered
-- expressions the filters compare), the planner took make = 'toyota' for 0.5 % of the rows
-- instead of 8 %, and make + model for 2 rows instead of 1,300, and chose its indexes by that.
CREATE STATISTICS listings_make_model_stats ON lower(make), lower(model) FROM listings;
-- A seller's own listings (any state), and the moderators' queue of hidden ones.
CREATE INDEX listings_seller_idx ON listings (seller_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX listings_hidden_idx ON listings (hidden_at DESC, id DESC)
    WHERE hidden_at IS NOT NULL AND deleted_at IS NULL;

-- The public thread of a listing, oldest first. A deleted reply is a tombstone (body emptied,
-- deleted_at set) that keeps its place; a hidden one is shown only to its author and moderators.
CREATE TABLE listing_replies (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    listing_id    uuid NOT NULL REFERENCES listings (id) ON DELETE CASCADE,
    author_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    body          text NOT NULL,
    hidden_at     timestamptz,
    hidden_reason text,
    deleted_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT listing_replies_body_length
        CHECK (char_length(body) <= 2000 AND (char_length(body) >= 1 OR deleted_at IS NOT NULL))
);
CREATE INDEX listing_replies_thread_idx ON listing_replies (listing_id, created_at, id);

-- Every moderation and admin action: who did what to which target, why, and when. Written in the
-- same transaction as the change it records wherever the change is a database write.
CREATE TABLE audit_log (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    actor_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL,
    reason      text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
