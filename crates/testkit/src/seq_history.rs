//! [`SeqHistory`]: the freshness contract checked by position. Every acknowledged write is
//! recorded with the `seq` the server gave it and the value it wrote; every read with the `seq`
//! its answer reflects and what it answered. [`SeqHistory::check`] then holds each read to the
//! contract (DESIGN.md, "The freshness contract"):
//!
//! 1. **Its answer is what the history says at its `seq`, or newer.** An answer reflecting `seq`
//!    `s` must come from the last write of that rule at or below `s`, or from a later one (a
//!    replica fetches a changed rule with `min_seq`, which answers *at least* that position), and
//!    from a write that exists: a value nobody wrote is a violation.
//! 2. **Read-your-writes.** A read's `seq` is at least the `seq` of every write its own caller
//!    had acknowledged before the read began, without any bound.
//! 3. **Bounded staleness while connected.** A read that began while its reader was connected
//!    misses no write acknowledged more than `bound` before it began (missing a write: the
//!    read's `seq` is below the write's). The lag of every read (how long before it began the
//!    first write it misses was acknowledged) is reported, whatever the bound.
//! 4. **Monotonic reads.** One reader's successive reads never go back in `seq`.
//!
//! Unlike [`crate::cluster::History`], which compares versions read from in-process instances
//! by wall-clock order alone, this checker compares positions, so it can also say whether each
//! `(seq, answer)` pair is consistent with the writes through that `seq`. It assumes one
//! writer per rule, each write of a rule producing a new value (so a value names the write that
//! produced it).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// An acknowledged write.
#[derive(Debug, Clone)]
pub struct Write {
    /// The caller that made it (its reads must reflect it).
    pub caller: usize,
    /// The rule written.
    pub rule: String,
    /// The `seq` the server acknowledged it with.
    pub seq: i64,
    /// The value it wrote.
    pub value: i64,
    /// When the acknowledgement arrived.
    pub acked: Instant,
}

/// What a read answered about one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The rule's value (a parameter, or what an evaluation computed from it).
    Value(i64),
    /// The rule did not exist (or did not match the entry point evaluated).
    Absent,
}

/// One read of one rule.
#[derive(Debug, Clone)]
pub struct Read {
    /// Who read (a reader task); its reads must never go back in `seq`.
    pub reader: String,
    /// The caller whose writes this read must reflect (`None`: a reader that writes nothing).
    pub caller: Option<usize>,
    /// The rule read.
    pub rule: String,
    /// The position the answer reflects.
    pub seq: i64,
    /// What it answered.
    pub answer: Answer,
    /// When the read began.
    pub started: Instant,
    /// Whether the reader was connected (following the change stream) when the read began.
    pub connected: bool,
}

/// Every acknowledged write and every read of a run.
#[derive(Debug, Default)]
pub struct SeqHistory {
    writes: Mutex<Vec<Write>>,
    reads: Mutex<Vec<Read>>,
}

/// What [`SeqHistory::check`] found.
#[derive(Debug, Clone, Default)]
pub struct SeqReport {
    /// Acknowledged writes.
    pub writes: usize,
    /// Reads.
    pub reads: usize,
    /// Reads that missed a write acknowledged before they began.
    pub behind: usize,
    /// Reads whose answer reflected a later write than their `seq` says.
    pub ahead: usize,
    /// Reads that began while their reader was not connected.
    pub disconnected: usize,
    /// The lag of reads, by reader kind (the text of `reader` before the first `/`): median,
    /// 99th percentile and maximum, over every read (a read missing nothing lags zero).
    pub lag: BTreeMap<String, (Duration, Duration, Duration)>,
}

impl fmt::Display for SeqReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} writes, {} reads ({} behind an acknowledged write, {} answered newer than their seq, {} while disconnected)",
            self.writes, self.reads, self.behind, self.ahead, self.disconnected
        )?;
        for (kind, (p50, p99, max)) in &self.lag {
            write!(
                f,
                "; {kind} lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                ms(*p50),
                ms(*p99),
                ms(*max)
            )?;
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl SeqHistory {
    /// An empty history.
    pub fn new() -> SeqHistory {
        SeqHistory::default()
    }

    /// Records an acknowledged write.
    pub fn write(&self, write: Write) {
        self.writes.lock().push(write);
    }

    /// Records reads (one reader's, in the order it made them).
    pub fn reads(&self, reads: impl IntoIterator<Item = Read>) {
        self.reads.lock().extend(reads);
    }

    /// The highest `seq` acknowledged so far.
    pub fn head(&self) -> i64 {
        self.writes.lock().iter().map(|w| w.seq).max().unwrap_or(0)
    }

    /// Checks every read against the writes (see the module docs); `Err` lists the first
    /// violations found.
    pub fn check(&self, bound: Duration) -> Result<SeqReport, String> {
        let writes = self.writes.lock().clone();
        let reads = self.reads.lock().clone();
        let mut by_rule: HashMap<&str, Vec<&Write>> = HashMap::new();
        for write in &writes {
            by_rule.entry(&write.rule).or_default().push(write);
        }
        for list in by_rule.values_mut() {
            list.sort_by_key(|w| w.seq);
        }
        let mut by_ack: Vec<&Write> = writes.iter().collect();
        by_ack.sort_by_key(|w| w.acked);
        // The highest `seq` acknowledged by each acknowledgement in time order: the first
        // acknowledgement at which it passes a read's `seq` is the earliest write the read misses.
        let highest: Vec<i64> = by_ack
            .iter()
            .scan(i64::MIN, |max, w| {
                *max = (*max).max(w.seq);
                Some(*max)
            })
            .collect();
        // A read's lag: among the writes acknowledged before it began, the earliest
        // acknowledged one above its `seq`. Scanned per read (a run's writes are few).
        let mut report = SeqReport {
            writes: writes.len(),
            reads: reads.len(),
            ..SeqReport::default()
        };
        let mut violations = Vec::new();
        let mut lags: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        let mut last_seq: HashMap<&str, i64> = HashMap::new();
        for read in &reads {
            let rule_writes = by_rule.get(read.rule.as_str()).map_or(&[][..], |w| &w[..]);
            // 1. The answer at or after the read's seq.
            let due = rule_writes.iter().rev().find(|w| w.seq <= read.seq);
            let source = match read.answer {
                Answer::Value(v) => rule_writes.iter().find(|w| w.value == v).map(|w| w.seq),
                Answer::Absent => None,
            };
            match (read.answer, source, due) {
                (Answer::Absent, _, None) => {}
                (Answer::Absent, _, Some(due)) => violations.push(format!(
                    "{} read {} at seq {} as absent, but it was written at seq {}",
                    read.reader, read.rule, read.seq, due.seq
                )),
                (answer, None, _) => violations.push(format!(
                    "{} read {} at seq {} as {answer:?}, which no acknowledged write produced",
                    read.reader, read.rule, read.seq
                )),
                (answer, Some(source), Some(due)) if source < due.seq => violations.push(format!(
                    "{} read {} at seq {} as {answer:?} (written at seq {source}), older than the write at seq {} it must reflect",
                    read.reader, read.rule, read.seq, due.seq
                )),
                (_, Some(source), _) => {
                    if source > read.seq {
                        report.ahead += 1;
                    }
                }
            }
            // 2. Read-your-writes.
            if let Some(caller) = read.caller {
                if let Some(own) = writes
                    .iter()
                    .filter(|w| w.caller == caller && w.acked <= read.started)
                    .max_by_key(|w| w.seq)
                {
                    if read.seq < own.seq {
                        violations.push(format!(
                            "{} read at seq {}, behind its own caller's write of {} at seq {}",
                            read.reader, read.seq, own.rule, own.seq
                        ));
                    }
                }
            }
            // 3. Staleness.
            let first_above = highest.partition_point(|max| *max <= read.seq);
            let missed = by_ack
                .get(first_above)
                .map(|w| w.acked)
                .filter(|acked| *acked <= read.started);
            let lag = missed.map_or(Duration::ZERO, |acked| read.started - acked);
            if missed.is_some() {
                report.behind += 1;
            }
            if !read.connected {
                report.disconnected += 1;
            } else if lag > bound {
                violations.push(format!(
                    "{} read at seq {} while connected, {lag:?} after a write above it was acknowledged (bound {bound:?})",
                    read.reader, read.seq
                ));
            }
            let kind = read.reader.split('/').next().unwrap_or_default().to_owned();
            lags.entry(kind).or_default().push(lag);
            // 4. Monotonic reads.
            let last = last_seq.entry(&read.reader).or_insert(read.seq);
            if read.seq < *last {
                violations.push(format!(
                    "{} read at seq {} after reading at seq {}",
                    read.reader, read.seq, *last
                ));
            }
            *last = (*last).max(read.seq);
        }
        for (kind, mut lags) in lags {
            lags.sort();
            let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
            report
                .lag
                .insert(kind, (at(0.5), at(0.99), lags[lags.len() - 1]));
        }
        if violations.is_empty() {
            Ok(report)
        } else {
            Err(format!(
                "{} violations of the freshness contract ({report}):\n{}",
                violations.len(),
                violations
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(1);

    /// Rule `r` written to 0 at seq 1, 1 at seq 3 and 2 at seq 5 by caller 0; rule `q` written
    /// at seq 2 and 4 by caller 1. All acknowledged at `t0`.
    fn history(t0: Instant) -> SeqHistory {
        let history = SeqHistory::new();
        for (caller, rule, seq, value) in [
            (0, "r", 1, 0),
            (1, "q", 2, 0),
            (0, "r", 3, 1),
            (1, "q", 4, 1),
            (0, "r", 5, 2),
        ] {
            history.write(Write {
                caller,
                rule: rule.to_owned(),
                seq,
                value,
                acked: t0,
            });
        }
        history
    }

    fn read(rule: &str, seq: i64, answer: Answer, started: Instant) -> Read {
        Read {
            reader: "replica/0".to_owned(),
            caller: None,
            rule: rule.to_owned(),
            seq,
            answer,
            started,
            connected: true,
        }
    }

    #[test]
    fn answers_at_or_after_their_seq_pass() {
        let t0 = Instant::now();
        let history = history(t0);
        history.reads([
            read("r", 1, Answer::Value(0), t0),
            read("r", 2, Answer::Value(0), t0),
            // Newer than the seq says: allowed, counted.
            read("r", 3, Answer::Value(2), t0),
            read("q", 4, Answer::Value(1), t0),
            read("r", 5, Answer::Value(2), t0),
        ]);
        let report = history.check(BOUND).unwrap();
        assert_eq!((report.reads, report.ahead), (5, 1), "{report}");
    }

    #[test]
    fn an_answer_older_than_its_seq_fails() {
        let t0 = Instant::now();
        let history = history(t0);
        history.reads([read("r", 4, Answer::Value(0), t0)]);
        let error = history.check(BOUND).unwrap_err();
        assert!(error.contains("older than the write at seq 3"), "{error}");
        let history = super::tests::history(t0);
        history.reads([read("q", 4, Answer::Value(0), t0)]);
        assert!(history.check(BOUND).is_err());
    }

    #[test]
    fn a_value_nobody_wrote_or_a_missing_rule_fails() {
        let t0 = Instant::now();
        let history = history(t0);
        history.reads([read("r", 5, Answer::Value(7), t0)]);
        assert!(history
            .check(BOUND)
            .unwrap_err()
            .contains("no acknowledged"));
        let history = super::tests::history(t0);
        history.reads([read("r", 5, Answer::Absent, t0)]);
        assert!(history.check(BOUND).unwrap_err().contains("absent"));
    }

    #[test]
    fn a_read_behind_its_callers_own_write_fails_at_once() {
        let t0 = Instant::now();
        let history = history(t0);
        let mut mine = read("r", 3, Answer::Value(1), t0);
        mine.caller = Some(0);
        history.reads([mine]);
        let error = history.check(Duration::from_secs(3600)).unwrap_err();
        assert!(error.contains("its own caller's write"), "{error}");
    }

    #[test]
    fn a_connected_read_behind_by_more_than_the_bound_fails_and_a_disconnected_one_is_counted() {
        let t0 = Instant::now();
        let history = history(t0);
        let late = t0 + 2 * BOUND;
        history.reads([read("q", 2, Answer::Value(0), late)]);
        let error = history.check(BOUND).unwrap_err();
        assert!(error.contains("bound"), "{error}");

        let history = super::tests::history(t0);
        let mut away = read("q", 2, Answer::Value(0), late);
        away.connected = false;
        history.reads([away, read("q", 4, Answer::Value(1), t0 + BOUND / 2)]);
        let report = history.check(BOUND).unwrap();
        assert_eq!((report.behind, report.disconnected), (2, 1), "{report}");
        assert_eq!(report.lag["replica"].2, 2 * BOUND);
    }

    #[test]
    fn a_reader_going_back_in_seq_fails() {
        let t0 = Instant::now();
        let history = history(t0);
        history.reads([
            read("r", 5, Answer::Value(2), t0),
            read("r", 4, Answer::Value(2), t0),
        ]);
        assert!(history.check(BOUND).unwrap_err().contains("after reading"));
    }
}
