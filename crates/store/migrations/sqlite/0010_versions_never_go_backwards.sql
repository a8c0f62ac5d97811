-- A rule's version only moves forward, whoever writes. Optimistic concurrency compares the version
-- a writer read with the stored one: a plain-SQL `UPDATE rules SET version = 1` on a rule at
-- version 3 would make an `If-Match: "1"` from long ago match again, and a cache holding version 3
-- would refuse the reloaded "older" rule. The update is refused instead, naming the fix.
CREATE TRIGGER rules_version_never_goes_backwards BEFORE UPDATE OF version ON rules
WHEN NEW.version < OLD.version
BEGIN
    SELECT RAISE(ABORT, 'a rule''s version cannot go backwards; leave `version` out of the UPDATE and it is bumped for you');
END;
