-- Each write of a projection's checkpoint moves its generation on; a writer whose generation
-- is no longer the stored one (another worker wrote since it loaded) is refused.
ALTER TABLE core_projections ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
