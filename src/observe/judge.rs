//! The judge's queue: served `auto` answers sampled for grading, handed to the judge worker
//! (`app::judge`) off the request path. Bounded: when it is full a judgement is dropped and
//! counted, never waited for. Also the judge's counters and the score parser.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// One answer to grade.
#[derive(Debug, Clone)]
pub struct JudgeJob {
    pub request_id: String,
    /// The model that served the answer (the feedback is about it).
    pub model: String,
    pub question: String,
    pub answer: String,
    /// Pairwise mode: the request's messages and the runner-up candidate to answer them too.
    pub pairwise: Option<(serde_json::Value, String)>,
}

/// Why a judgement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeResult {
    /// A score was stored as feedback.
    Judged,
    /// The queue was full.
    Dropped,
    /// The hourly budget was spent.
    OverBudget,
    /// Every try failed upstream.
    Failed,
    /// Every try answered without a score.
    Unparsable,
}

impl JudgeResult {
    pub const ALL: [JudgeResult; 5] = [
        JudgeResult::Judged,
        JudgeResult::Dropped,
        JudgeResult::OverBudget,
        JudgeResult::Failed,
        JudgeResult::Unparsable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            JudgeResult::Judged => "judged",
            JudgeResult::Dropped => "dropped",
            JudgeResult::OverBudget => "over_budget",
            JudgeResult::Failed => "failed",
            JudgeResult::Unparsable => "unparsable",
        }
    }
}

/// The sending side of the judge queue and the judge's counters (carried across reloads).
pub struct JudgeQueue {
    sender: mpsc::Sender<JudgeJob>,
    receiver: Mutex<Option<mpsc::Receiver<JudgeJob>>>,
    results: [AtomicU64; 5],
    /// Judge spend in micro-USD.
    cost_micro_usd: AtomicU64,
    /// Tries that failed or gave no score (retried within the budget).
    pub retries: AtomicU64,
    draws: AtomicU64,
}

impl JudgeQueue {
    pub fn new(capacity: usize) -> JudgeQueue {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        JudgeQueue {
            sender,
            receiver: Mutex::new(Some(receiver)),
            results: Default::default(),
            cost_micro_usd: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            draws: AtomicU64::new(0),
        }
    }

    /// The receiving side, once (the worker takes it).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<JudgeJob>> {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether this served answer is one to judge: every 1/rate-th, spread evenly (offer n is
    /// taken when floor((n + 1) × rate) > floor(n × rate)). Asked before a job is built, so the
    /// answers not sampled cost nothing more.
    pub fn sampled(&self, rate: f64) -> bool {
        let n = self.draws.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * rate).floor() > (n * rate).floor()
    }

    /// Queues a sampled answer without waiting, or drops and counts it when the queue is full.
    pub fn offer(&self, job: JudgeJob) {
        if self.sender.try_send(job).is_err() {
            self.count(JudgeResult::Dropped);
        }
    }

    pub fn count(&self, r: JudgeResult) {
        self.results[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn counted(&self, r: JudgeResult) -> u64 {
        self.results[r as usize].load(Ordering::Relaxed)
    }

    pub fn add_cost(&self, usd: f64) {
        self.cost_micro_usd
            .fetch_add((usd * 1e6).round() as u64, Ordering::Relaxed);
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_micro_usd.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// The score in a judge's answer: a number in [0, 1] at its start (after markdown marks and an
/// optional `Score:`); a trailing `/10` or `%` scales it. `None` for anything else — an answer
/// that talks first is not guessed at.
pub fn parse_score(text: &str) -> Option<f64> {
    let t = text
        .trim()
        .trim_start_matches(|c: char| !c.is_alphanumeric() && c != '.');
    let t = match t.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("score") => t[5..]
            .trim_start_matches(|c: char| c == ':' || c == '=' || c.is_whitespace() || c == '*'),
        _ => t,
    };
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..end].trim_end_matches('.').parse().ok()?;
    let after = t[end..].trim_start();
    let scaled = if after.starts_with("/100") || after.starts_with('%') {
        value / 100.0
    } else if after.starts_with("/10") {
        value / 10.0
    } else {
        value
    };
    (0.0..=1.0).contains(&scaled).then_some(scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_read_or_refused() {
        assert_eq!(parse_score("0.8"), Some(0.8));
        assert_eq!(parse_score("Score: 1"), Some(1.0));
        assert_eq!(parse_score("**score** = 0.25"), Some(0.25));
        assert_eq!(parse_score("7/10."), Some(0.7));
        assert_eq!(parse_score("85%"), Some(0.85));
        assert_eq!(parse_score("0."), Some(0.0));
        assert_eq!(parse_score(".5"), Some(0.5));
        assert_eq!(parse_score("7"), None, "outside [0, 1] without a scale");
        assert_eq!(
            parse_score("great answer, 0.9"),
            None,
            "talk first is not guessed at"
        );
        assert_eq!(parse_score("Hello from m! You said: 0.5"), None);
        assert_eq!(parse_score(""), None);
    }

    #[test]
    fn sampling_takes_the_rate_and_a_full_queue_drops() {
        let q = JudgeQueue::new(3);
        let job = || JudgeJob {
            request_id: "r".into(),
            model: "m".into(),
            question: "q".into(),
            answer: "a".into(),
            pairwise: None,
        };
        for _ in 0..20 {
            if q.sampled(0.25) {
                q.offer(job());
            }
        }
        // 5 of 20 sampled, 3 fit the queue.
        assert_eq!(q.counted(JudgeResult::Dropped), 2);
        let mut rx = q.take_receiver().unwrap();
        assert!(q.take_receiver().is_none());
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 3);
    }
}
