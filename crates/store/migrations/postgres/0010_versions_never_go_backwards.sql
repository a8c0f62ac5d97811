-- A rule's version only moves forward, whoever writes. Optimistic concurrency compares the version
-- a writer read with the stored one: a plain-SQL `UPDATE rules SET version = 1` on a rule at
-- version 3 would make an `If-Match: "1"` from long ago match again, and a cache holding version 3
-- would refuse the reloaded "older" rule. The update is refused instead, naming the fix.
CREATE OR REPLACE FUNCTION rulebook_rules_before_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant IS DISTINCT FROM OLD.tenant OR NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'a rule''s tenant and id cannot change: delete the rule and insert it again';
    END IF;
    IF NEW.version < OLD.version THEN
        RAISE EXCEPTION 'rule `%` is at version %: a version cannot go backwards to %; leave `version` out of the UPDATE and it is bumped for you',
            OLD.id, OLD.version, NEW.version;
    END IF;
    IF NEW.version = OLD.version THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END
$$;
