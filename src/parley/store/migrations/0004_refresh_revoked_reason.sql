-- Why a refresh token was revoked, so that presenting it again is answered with the cause: a
-- token revoked by a logout is not a reuse (a second use of a rotated, `used_at` token), which is
-- what revokes a family as stolen. NULL for tokens revoked before this column existed.
ALTER TABLE refresh_tokens
    ADD COLUMN revoked_reason text
        CHECK (revoked_reason IN ('logout', 'logout_all', 'password', 'ban', 'reuse'));
