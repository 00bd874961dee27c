//! The analytics table: one compact [`Row`] per logged request (strings interned as [`Sym`]s),
//! filled by tailing the log directory's NDJSON files, with feedback joined to its request.
//! At most `capacity` rows are kept; the oldest go first, so memory is bounded whatever the
//! size of the log.

use crate::observe::recent::table_bytes;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use switchyard_learn::logfiles::ndjson_files;
use switchyard_learn::schema::{AttemptRecord, FailureKind, FeedbackRecord, LogRecord};

pub use crate::observe::intern::{Interner, Sym};

/// A failed or skipped attempt before the serving one (or before the request gave up).
#[derive(Clone, Copy)]
pub struct Failure {
    pub model: Sym,
    /// `status 503`, `timeout`, `ttft_timeout`, `connect`, `skipped: cooldown`, ...
    pub reason: Sym,
}

/// What analytics keeps of an `auto` decision.
#[derive(Clone, Copy)]
pub struct Learned {
    pub chosen: Sym,
    pub artifact: Sym,
    pub knob: Sym,
    pub decision_ms: f32,
    pub unfamiliar: bool,
    pub explored: bool,
    /// The savings ledger's entry: the baseline's cost of the same usage (NaN without a
    /// baseline), whether the baseline served it, and the served model's propensity.
    pub baseline_cost_usd: f64,
    pub on_baseline: bool,
    pub propensity: f32,
}

/// One logged request.
pub struct Row {
    pub ts_ms: u64,
    pub id_hash: u64,
    /// The request id when it is Switchyard's 32 hex digits (else 0: read it from the line).
    pub id: u128,
    /// Where its log line is: file number (see [`Index::files`]) and byte offset.
    pub file: u32,
    pub offset: u64,
    pub endpoint: Sym,
    pub status: u16,
    pub model: Sym,
    pub router: Sym,
    pub route: Sym,
    pub variant: Sym,
    pub key: Sym,
    /// The virtual key's team (0 for router keys and requests without a key).
    pub team: Sym,
    pub user: Sym,
    pub duration_ms: f32,
    /// NaN when there was no first token.
    pub ttft_ms: f32,
    pub cost_usd: f64,
    pub failures: Box<[Failure]>,
    pub learned: Option<Learned>,
    /// Mean feedback score on the served model from users (any source but the judge) and from
    /// the judge; NaN when none.
    pub user_score: f32,
    pub judge_score: f32,
}

/// How far each log file has been read.
struct Tail {
    path: PathBuf,
    read: u64,
}

/// Feedback on one request, per source, as it arrived (the last per source counts).
type Scores = Vec<(Sym, f32)>;

/// The table and the state of the tail.
pub struct Index {
    pub syms: Interner,
    pub rows: VecDeque<Row>,
    /// Rows evicted so far: row `i` of the deque has the global number `evicted + i`.
    evicted: u64,
    capacity: usize,
    by_id: HashMap<u64, u64>,
    /// Feedback per request (by id hash), kept beside the row's means.
    feedback: HashMap<u64, Scores>,
    /// Request log files, in the order they were first seen (a row's `file` is a position here).
    pub files: Vec<PathBuf>,
    requests: Vec<Tail>,
    feedback_files: Vec<Tail>,
    judge: Sym,
    /// Lines that did not parse (a partial line at the end of a file is left for the next read).
    pub skipped_lines: u64,
}

/// The `file` of a row read from the shared store (its record is fetched from there).
pub const IN_STORE: usize = u32::MAX as usize;

/// A stable hash of a request id.
pub fn id_hash(id: &str) -> u64 {
    switchyard_learn::hash::stable_hash(id)
}

impl Index {
    pub fn new(capacity: usize) -> Index {
        let mut syms = Interner::default();
        let judge = syms.intern(Some("judge"));
        Index {
            syms,
            rows: VecDeque::new(),
            evicted: 0,
            capacity: capacity.max(1),
            by_id: HashMap::new(),
            feedback: HashMap::new(),
            files: Vec::new(),
            requests: Vec::new(),
            feedback_files: Vec::new(),
            judge,
            skipped_lines: 0,
        }
    }

    /// Bytes the table holds now (rows, id table, interned strings, failure lists, feedback).
    pub fn bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Row>()
            + table_bytes::<u64, u64>(self.by_id.capacity())
            + self
                .rows
                .iter()
                .map(|r| r.failures.len() * std::mem::size_of::<Failure>())
                .sum::<usize>()
            + self.feedback.len() * 64
            + self.syms.bytes()
    }

    /// The most `rows` rows take (the row deque and the id table grow by doubling), without
    /// failure lists, feedback and interned strings, which grow with failed attempts, feedback
    /// and distinct names rather than with requests.
    pub fn bound_bytes(rows: usize) -> usize {
        rows.next_power_of_two() * std::mem::size_of::<Row>() + table_bytes::<u64, u64>(rows)
    }

    /// Reads what was appended to the log directory since the last call: new request lines
    /// first, then new feedback lines.
    pub fn refresh(&mut self, dir: &Path) -> std::io::Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        for path in ndjson_files(dir, "requests")? {
            if !self.requests.iter().any(|t| t.path == path) {
                self.files.push(path.clone());
                self.requests.push(Tail { path, read: 0 });
            }
        }
        for path in ndjson_files(dir, "feedback")? {
            if !self.feedback_files.iter().any(|t| t.path == path) {
                self.feedback_files.push(Tail { path, read: 0 });
            }
        }
        for file in 0..self.requests.len() {
            let (path, from) = (self.requests[file].path.clone(), self.requests[file].read);
            self.requests[file].read = read_lines(&path, from, |offset, line| {
                self.add_request(file, offset, line)
            })?;
        }
        for i in 0..self.feedback_files.len() {
            let (path, from) = (
                self.feedback_files[i].path.clone(),
                self.feedback_files[i].read,
            );
            self.feedback_files[i].read =
                read_lines(&path, from, |_, line| self.add_feedback(line))?;
        }
        Ok(())
    }

    /// Adds one request log line (found in file `file` at `offset`; [`IN_STORE`] for a record
    /// read from the shared store). A request already in the table is not added twice.
    pub fn add_request(&mut self, file: usize, offset: u64, line: &[u8]) {
        let Ok(l) = serde_json::from_slice::<LogRecord>(line) else {
            self.skipped_lines += 1;
            return;
        };
        if self.row_index(id_hash(&l.request_id)).is_some() {
            return;
        }
        let s = &mut self.syms;
        // The serving attempt is the last one; a request no model served failed on all of them.
        let before = match l.attempts.split_last() {
            Some((_, before)) if l.model.is_some() => before,
            _ => &l.attempts[..],
        };
        let failures: Box<[Failure]> = before
            .iter()
            .map(|a| Failure {
                model: s.intern(Some(&a.model)),
                reason: s.intern(Some(&failure_reason(a))),
            })
            .collect();
        let learned = l.learned.as_ref().map(|d| Learned {
            chosen: s.intern(Some(&d.chosen)),
            artifact: s.intern(Some(&d.artifact_version)),
            knob: s.intern(Some(&d.knob)),
            decision_ms: d.decision_ms as f32,
            unfamiliar: d.unfamiliar,
            explored: d.exploration.explored,
            baseline_cost_usd: l.savings.as_ref().map_or(f64::NAN, |s| s.baseline_cost_usd),
            on_baseline: d
                .baseline
                .as_deref()
                .is_some_and(|b| l.model.as_deref() == Some(b)),
            propensity: d.exploration.propensity as f32,
        });
        let row = Row {
            ts_ms: l.ts_ms,
            id_hash: id_hash(&l.request_id),
            id: parse_hex_id(&l.request_id),
            file: file as u32,
            offset,
            endpoint: s.intern(Some(l.endpoint.as_ref()).filter(|e| !e.is_empty())),
            status: l.status,
            model: s.intern(l.model.as_deref()),
            router: s.intern(l.router.as_deref()),
            route: s.intern(l.route.as_deref()),
            variant: s.intern(l.variant.as_deref()),
            key: s.intern(l.key.as_deref()),
            team: s.intern(l.team.as_deref()),
            user: s.intern(l.user.as_deref()),
            duration_ms: l.duration_ms as f32,
            ttft_ms: l.ttft_ms.map_or(f32::NAN, |t| t as f32),
            cost_usd: l.cost_usd,
            failures,
            learned,
            user_score: f32::NAN,
            judge_score: f32::NAN,
        };
        if self.rows.len() == self.capacity {
            if let Some(old) = self.rows.pop_front() {
                self.by_id.remove(&old.id_hash);
                self.feedback.remove(&old.id_hash);
                self.evicted += 1;
            }
        }
        self.by_id
            .insert(row.id_hash, self.evicted + self.rows.len() as u64);
        self.rows.push_back(row);
    }

    /// Joins one feedback line to its request: the last score per source about the served
    /// model counts (feedback about another model, e.g. a pairwise judge's shadow answer, is
    /// left to the trainer).
    pub fn add_feedback(&mut self, line: &[u8]) {
        let Ok(f) = serde_json::from_slice::<FeedbackRecord>(line) else {
            self.skipped_lines += 1;
            return;
        };
        let h = id_hash(&f.request_id);
        let Some(i) = self.row_index(h) else { return };
        let model = f.model.and_then(|m| self.syms.get(&m)).unwrap_or(0);
        if model != 0 && model != self.rows[i].model {
            return;
        }
        let source = self.syms.intern(Some(&f.source));
        let scores = self.feedback.entry(h).or_default();
        match scores.iter_mut().find(|(s, _)| *s == source) {
            Some(entry) => entry.1 = f.score as f32,
            None => scores.push((source, f.score as f32)),
        }
        let mean = |judge: bool| {
            let v: Vec<f32> = scores
                .iter()
                .filter(|(s, _)| (*s == self.judge) == judge)
                .map(|(_, x)| *x)
                .collect();
            if v.is_empty() {
                f32::NAN
            } else {
                v.iter().sum::<f32>() / v.len() as f32
            }
        };
        let (user, judge) = (mean(false), mean(true));
        let row = &mut self.rows[i];
        row.user_score = user;
        row.judge_score = judge;
    }

    /// The deque position of the request with this id hash, if it is still kept.
    pub fn row_index(&self, h: u64) -> Option<usize> {
        let global = *self.by_id.get(&h)?;
        global
            .checked_sub(self.evicted)
            .map(|i| i as usize)
            .filter(|&i| i < self.rows.len())
    }

    /// Feedback given on a request: (source, score) pairs.
    pub fn feedback_of(&self, h: u64) -> Vec<(&str, f32)> {
        self.feedback
            .get(&h)
            .into_iter()
            .flatten()
            .map(|(s, x)| (self.syms.name(*s).unwrap_or(""), *x))
            .collect()
    }
}

fn parse_hex_id(id: &str) -> u128 {
    if id.len() == 32 {
        u128::from_str_radix(id, 16).unwrap_or(0)
    } else {
        0
    }
}

impl Index {
    /// A row's request id (from its log line when it is not in Switchyard's own format).
    pub fn request_id(&self, r: &Row) -> Option<String> {
        if r.id != 0 {
            return Some(format!("{:032x}", r.id));
        }
        let line = line_at(self.files.get(r.file as usize)?, r.offset).ok()?;
        let r: LogRecord = serde_json::from_slice(&line).ok()?;
        Some(r.request_id.into_owned())
    }
}

/// Why an attempt did not serve, as one label.
fn failure_reason(a: &AttemptRecord) -> String {
    if let Some(why) = a.skipped {
        return format!("skipped: {}", why.as_str());
    }
    match (a.error_kind, a.status) {
        (Some(FailureKind::Status) | None, Some(code)) => format!("status {code}"),
        (Some(kind), _) => kind.as_str().to_string(),
        (None, None) => "failed".to_string(),
    }
}

/// Calls `each(offset, line)` for every complete line of `path` from byte `from`; returns the
/// offset after the last complete line (a line still being written is read next time).
fn read_lines(path: &Path, from: u64, mut each: impl FnMut(u64, &[u8])) -> std::io::Result<u64> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(from),
        Err(e) => return Err(e),
    };
    if file.metadata()?.len() <= from {
        return Ok(from);
    }
    file.seek(SeekFrom::Start(from))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = from;
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(offset);
        }
        let body = &line[..n - 1];
        if !body.is_empty() {
            each(offset, body);
        }
        offset += n as u64;
    }
}

/// Reads the one line at `offset` of `path`.
pub fn line_at(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut line = Vec::new();
    BufReader::new(file).read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, model: &str, attempts: &str) -> String {
        format!(
            r#"{{"ts_ms":1000,"request_id":"{id}","endpoint":"/v1/chat/completions","status":200,"model":"{model}","router":"demo","variant":"a","user":"u1","attempts":[{attempts}],"ttft_ms":5.0,"duration_ms":9.5,"cost_usd":0.25,"prompt":[{{"role":"user","content":"hi"}}]}}"#
        )
    }

    #[test]
    fn rows_keep_failures_and_feedback_joins_the_served_model() {
        let mut ix = Index::new(10);
        let attempts = r#"{"model":"m/a","success":false,"status":503,"error_kind":"status"},{"model":"m/b","success":true,"status":200}"#;
        ix.add_request(0, 0, line("r1", "m/b", attempts).as_bytes());
        let r = &ix.rows[0];
        assert_eq!(ix.syms.name(r.model), Some("m/b"));
        assert_eq!(r.failures.len(), 1);
        assert_eq!(ix.syms.name(r.failures[0].reason), Some("status 503"));
        assert!(r.user_score.is_nan());
        ix.add_feedback(br#"{"request_id":"r1","source":"app","score":0.5,"model":"m/b"}"#);
        ix.add_feedback(br#"{"request_id":"r1","source":"app","score":1.0,"model":"m/b"}"#);
        ix.add_feedback(br#"{"request_id":"r1","source":"judge","score":0.0,"model":"m/b"}"#);
        // about another model: not the served answer's score
        ix.add_feedback(br#"{"request_id":"r1","source":"judge","score":1.0,"model":"m/a"}"#);
        let r = &ix.rows[0];
        assert_eq!((r.user_score, r.judge_score), (1.0, 0.0));
        // a source with characters JSON escapes is read as written (it was skipped)
        ix.add_feedback(
            br#"{"request_id":"r1","source":"say \"hi\"\n","score":0.25,"model":"m/b"}"#,
        );
        assert_eq!(ix.skipped_lines, 0);
        let sources: Vec<(Option<&str>, f32)> = ix
            .feedback_of(id_hash("r1"))
            .into_iter()
            .map(|(s, x)| (Some(s), x))
            .collect();
        assert!(
            sources.contains(&(Some("say \"hi\"\n"), 0.25)),
            "{sources:?}"
        );
    }

    #[test]
    fn capacity_evicts_the_oldest_rows_and_their_ids() {
        let mut ix = Index::new(2);
        for id in ["a", "b", "c"] {
            ix.add_request(0, 0, line(id, "m", "").as_bytes());
        }
        assert_eq!(ix.rows.len(), 2);
        assert_eq!(ix.row_index(id_hash("a")), None);
        assert_eq!(ix.row_index(id_hash("c")), Some(1));
        ix.add_request(0, 0, b"not json");
        assert_eq!(ix.skipped_lines, 1);
    }

    #[test]
    fn the_tail_reads_only_complete_new_lines() {
        let dir = std::env::temp_dir().join(format!("sy-analytics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("requests-1.ndjson");
        let first = line("x1", "m", "");
        std::fs::write(&path, format!("{first}\n{{\"partial")).unwrap();
        let mut ix = Index::new(10);
        ix.refresh(&dir).unwrap();
        assert_eq!(ix.rows.len(), 1);
        let second = line("x2", "m", "");
        std::fs::write(&path, format!("{first}\n{second}\n")).unwrap();
        ix.refresh(&dir).unwrap();
        assert_eq!(ix.rows.len(), 2);
        let offset = ix.rows[1].offset;
        assert_eq!(line_at(&path, offset).unwrap(), second.as_bytes());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
