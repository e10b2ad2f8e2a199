-- Full-text search of tickets (by title) and events (by title and venue): PRODUCT.md's
-- `tickets(search:)` and `events(search:)`.
--
-- Words are compared case- and accent-insensitively ("Über" finds "uber", "ÉTÉ" finds "été"),
-- whole words under the `simple` configuration: no stemming and no stop words, so every word a
-- buyer types must be there and "are" may be the start of "Arena".
--
-- `public.search_text` folds a text the way both sides are compared: lower case, accents off,
-- and ASCII punctuation as spaces, so that "AC/DC", "R.E.M." or "2.5" are words the gateway's
-- query finds (it splits a search at anything but letters and digits; PostgreSQL's parser would
-- keep "ac/dc" as one path-like token). It lives outside the generation schemas (a rebuild drops
-- the old generation with CASCADE, and the generated columns of the new one depend on it), as
-- does the `unaccent` extension, and is created once: later generations use it as it is (a
-- change to it would be a migration of its own, recomputing the columns). `unaccent` is only
-- STABLE (its dictionary could be changed); naming the dictionary makes it safe to call
-- IMMUTABLE here, which a generated column needs.
DO $$
DECLARE
    extension_schema text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'unaccent') THEN
        CREATE EXTENSION unaccent SCHEMA public;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'public' AND p.proname = 'search_text') THEN
        SELECT n.nspname INTO extension_schema
          FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'unaccent';
        EXECUTE format(
            'CREATE FUNCTION public.search_text(text) RETURNS text
               LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
               AS %L',
            format('SELECT regexp_replace(lower(%I.unaccent(%L::regdictionary, $1)), %L, %L, %L)',
                   extension_schema, quote_ident(extension_schema) || '.unaccent',
                   '[!-/:-@[-`{-~]+', ' ', 'g'));
    END IF;
END
$$;

ALTER TABLE tickets ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', public.search_text(title))) STORED;
CREATE INDEX tickets_search ON tickets USING gin (search);

-- A title's words weigh more than the venue's: "Arena" ranks the event named so above one held
-- at an arena.
ALTER TABLE events ADD COLUMN search tsvector
    GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', public.search_text(title)), 'A')
        || setweight(to_tsvector('simple', public.search_text(venue)), 'B')) STORED;
CREATE INDEX events_search ON events USING gin (search);
