//! Mid-stream rescue: a stream that broke or stalled after bytes reached the client is
//! continued on the next models of its chain ([`continue_on`]), and the continuation is
//! spliced onto what was sent without repeating it ([`Splice`]), so the client reads one
//! answer in one stream.

use super::state::AppState;
use crate::config::ModelConfig;
use crate::observe::record::RequestContext;
use crate::route::RoutePlan;
use crate::upstream::failover::Execution;

/// Continues the answer `sent` on the models after `from` in the request's chain, within
/// what is left of `server.deadline`; `None` when no model follows or no time is left.
pub async fn continue_on(
    state: &AppState,
    ctx: &RequestContext,
    from: &ModelConfig,
    sent: &str,
) -> Option<Execution> {
    let chain: Vec<_> = ctx
        .plan
        .chain
        .iter()
        .skip_while(|m| m.id != from.id)
        .skip(1)
        .cloned()
        .collect();
    if chain.is_empty() {
        return None;
    }
    let mut guards = state.guards();
    if let Some(d) = guards.deadline {
        guards.deadline = Some(d.checked_sub(ctx.started.elapsed())?);
    }
    let plan = RoutePlan {
        chain,
        ..ctx.plan.clone()
    };
    Some(
        crate::upstream::continuation::continue_stream(
            &state.providers,
            &plan,
            &ctx.req,
            sent,
            &guards,
        )
        .await,
    )
}

/// Characters of the answer's end a continuation is compared with.
const TAIL_CHARS: usize = 64;
/// The shortest repeat that counts as overlap (shorter ones may be the answer's own words).
const MIN_OVERLAP: usize = 4;

/// Holds the start of a continuation until it can tell how much of it repeats the end of
/// what was sent, then lets the rest through.
pub struct Splice {
    tail: String,
    held: String,
}

impl Splice {
    pub fn new(sent: &str) -> Splice {
        let skip = sent.chars().count().saturating_sub(TAIL_CHARS);
        Splice {
            tail: sent.chars().skip(skip).collect(),
            held: String::new(),
        }
    }

    /// Takes the next piece of the continuation; `Some(text to send)` once enough has come
    /// (or the answer is finishing), `None` while it is still held.
    pub fn feed(&mut self, piece: &str, finishing: bool) -> Option<String> {
        self.held.push_str(piece);
        if self.held.chars().count() < self.tail.chars().count() && !finishing {
            return None;
        }
        Some(self.flush())
    }

    /// What is held, less its overlap with the end of what was sent.
    pub fn flush(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        let k = overlap(&self.tail, &held);
        held[k..].to_string()
    }
}

/// The byte length of the longest start of `head` that is also the end of `tail` (at least
/// [`MIN_OVERLAP`] characters), else 0.
fn overlap(tail: &str, head: &str) -> usize {
    head.char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .filter(|&k| head[..k].chars().count() >= MIN_OVERLAP && tail.ends_with(&head[..k]))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_that_repeats_the_end_is_spliced_without_the_repeat() {
        let mut s = Splice::new("Hello from ok! You said: tell me a");
        let mut out = String::new();
        for piece in [
            "me a",
            " story",
            " about a cat and a dog and a bird and a fish.",
        ] {
            if let Some(t) = s.feed(piece, false) {
                out.push_str(&t);
            }
        }
        assert_eq!(out, " story about a cat and a dog and a bird and a fish.");
        // A short answer is let through when it finishes; no overlap, nothing cut.
        let mut s = Splice::new("The answer is");
        assert_eq!(s.feed(" 42.", true).as_deref(), Some(" 42."));
        // Multi-byte text, and a repeat shorter than the minimum is kept.
        assert_eq!(overlap("… déjà vu", "déjà vu again"), "déjà vu".len());
        assert_eq!(overlap("said a", "a cat"), 0);
    }
}
