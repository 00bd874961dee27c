//! Cost–quality metrics of a router curve against the strongest and cheapest single models.
//!
//! A curve is a list of operating points (one per knob setting). Costs are normalised to
//! `x = (C − C_cheap) / (C_strong − C_cheap)`, quality to `PGR = (Q − Q_cheap) / (Q_strong − Q_cheap)`.
//! Between two knob settings every mixture is reachable (route a random share of prompts with
//! each), so curves are linear between points and anchored at the knob's limits, always-cheapest
//! `(0, 0)` and always-strongest `(1, 1)`.

use serde::Serialize;

/// One operating point over a set of prompts.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    /// Share of prompts sent to the strongest model.
    pub strong_share: f64,
    /// Mean cost per prompt (USD).
    pub cost: f64,
    /// Mean quality per prompt (0–1).
    pub quality: f64,
}

/// The two single-model references.
#[derive(Debug, Clone, Copy)]
pub struct Ends {
    pub cheap: Point,
    pub strong: Point,
}

impl Ends {
    pub fn x(&self, cost: f64) -> f64 {
        let span = self.strong.cost - self.cheap.cost;
        if span.abs() < 1e-15 {
            0.0
        } else {
            (cost - self.cheap.cost) / span
        }
    }

    pub fn pgr(&self, quality: f64) -> Option<f64> {
        let gap = self.strong.quality - self.cheap.quality;
        (gap.abs() > 1e-12).then(|| (quality - self.cheap.quality) / gap)
    }

    fn cost_at(&self, x: f64) -> f64 {
        self.cheap.cost + x * (self.strong.cost - self.cheap.cost)
    }
}

/// The headline figures of one router curve.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Mean PGR over normalised cost in [0, 1].
    pub apgr: Option<f64>,
    /// Strong-call share and mean cost per prompt where PGR first reaches 50 % / 80 %.
    pub cpt50_share: Option<f64>,
    pub cpt50_cost: Option<f64>,
    pub cpt80_share: Option<f64>,
    pub cpt80_cost: Option<f64>,
    /// Area under the non-decreasing upper convex hull of quality over normalised cost.
    pub aiq: f64,
    /// Best quality reachable at or below the cost of the best single model.
    pub quality_at_best_static_cost: f64,
    /// `1 − C / C_strong` at the cheapest point reaching 95 % of the strongest model's quality.
    pub savings_at_95: Option<f64>,
}

/// (x, share, quality) of the anchored curve, sorted by x.
fn anchored(points: &[Point], ends: &Ends) -> Vec<(f64, f64, f64)> {
    let mut v: Vec<(f64, f64, f64)> = points
        .iter()
        .map(|p| (ends.x(p.cost).clamp(0.0, 1.0), p.strong_share, p.quality))
        .collect();
    v.push((0.0, 0.0, ends.cheap.quality));
    v.push((1.0, 1.0, ends.strong.quality));
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.total_cmp(&b.2)));
    v
}

/// The first place along the curve (by cost) where quality reaches `target`, interpolated:
/// (x, share).
fn first_reaching(curve: &[(f64, f64, f64)], target: f64) -> Option<(f64, f64)> {
    if curve.first()?.2 >= target {
        return Some((curve[0].0, curve[0].1));
    }
    curve.windows(2).find_map(|w| {
        let (a, b) = (w[0], w[1]);
        (a.2 < target && b.2 >= target).then(|| {
            let t = (target - a.2) / (b.2 - a.2);
            (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
        })
    })
}

/// Area under the non-decreasing upper convex hull of (x, quality) over x in [0, 1].
pub fn aiq(xy: &[(f64, f64)]) -> f64 {
    let mut pts: Vec<(f64, f64)> = xy.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut hull: Vec<(f64, f64)> = Vec::new();
    for p in pts {
        while hull.len() >= 2 {
            let (o, a) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            // Pop while the turn o → a → p is not clockwise (a lies on or below o–p).
            if (a.0 - o.0) * (p.1 - o.1) - (a.1 - o.1) * (p.0 - o.0) >= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
    // Non-decreasing: after the peak, quality stays at the peak (a costlier point is never needed).
    let mut best = f64::MIN;
    for p in &mut hull {
        best = best.max(p.1);
        p.1 = best;
    }
    let mut area = 0.0;
    for w in hull.windows(2) {
        area += (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0;
    }
    if let Some(last) = hull.last() {
        area += (1.0 - last.0).max(0.0) * last.1;
    }
    area
}

/// The area under a curve of (x, PGR) points sorted by x, linear between points.
fn trapezoids(curve: &[(f64, f64)]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

/// APGR, the one definition every report uses: the mean PGR over normalised cost in [0, 1] of
/// the curve through the (cost, quality) `points`, anchored at the cheapest `(0, 0)` and the
/// strongest `(1, 1)` single model and linear between points (the area under the points
/// themselves, not under their hull: that is [`aiq`]). `None` when the two models have the
/// same quality.
pub fn apgr(points: &[(f64, f64)], cheap: (f64, f64), strong: (f64, f64)) -> Option<f64> {
    let point = |(cost, quality): (f64, f64)| Point {
        strong_share: 0.0,
        cost,
        quality,
    };
    let ends = Ends {
        cheap: point(cheap),
        strong: point(strong),
    };
    let pts: Vec<Point> = points.iter().copied().map(point).collect();
    let curve: Option<Vec<(f64, f64)>> = anchored(&pts, &ends)
        .iter()
        .map(|(x, _, q)| ends.pgr(*q).map(|p| (*x, p)))
        .collect();
    curve.as_deref().map(trapezoids)
}

/// A curve for [`apgr`], as `switchyard-train apgr` reads it.
#[derive(serde::Deserialize)]
struct Curve {
    points: Vec<(f64, f64)>,
    cheap: (f64, f64),
    strong: (f64, f64),
}

/// `switchyard-train apgr`: reads a [`Curve`] as JSON on stdin; returns `{"apgr": value}`.
pub fn apgr_stdin() -> Result<String, String> {
    let c: Curve = serde_json::from_reader(std::io::stdin().lock())
        .map_err(|e| format!("stdin: expected {{\"points\": [[cost, quality], ...], \"cheap\": [cost, quality], \"strong\": [cost, quality]}}: {e}"))?;
    Ok(serde_json::json!({"apgr": apgr(&c.points, c.cheap, c.strong)}).to_string())
}

/// Summarises a curve; `best_static` is the single model with the highest quality.
pub fn summarize(points: &[Point], ends: &Ends, best_static: &Point) -> Summary {
    let curve = anchored(points, ends);
    let pgr_curve: Option<Vec<(f64, f64)>> = curve
        .iter()
        .map(|(x, _, q)| ends.pgr(*q).map(|p| (*x, p)))
        .collect();
    let apgr = pgr_curve.as_deref().map(trapezoids);
    let cpt = |p: f64| {
        let target = ends.cheap.quality + p * (ends.strong.quality - ends.cheap.quality);
        (ends.pgr(ends.strong.quality).is_some())
            .then(|| first_reaching(&curve, target))
            .flatten()
    };
    let (c50, c80) = (cpt(0.5), cpt(0.8));
    let xb = ends.x(best_static.cost).clamp(0.0, 1.0);
    let mut at_best = curve
        .iter()
        .filter(|c| c.0 <= xb)
        .map(|c| c.2)
        .fold(f64::MIN, f64::max);
    if let Some(w) = curve.windows(2).find(|w| w[0].0 <= xb && w[1].0 > xb) {
        let t = (xb - w[0].0) / (w[1].0 - w[0].0);
        at_best = at_best.max(w[0].2 + t * (w[1].2 - w[0].2));
    }
    let savings = first_reaching(&curve, 0.95 * ends.strong.quality).map(|(x, _)| {
        if ends.strong.cost > 0.0 {
            1.0 - ends.cost_at(x) / ends.strong.cost
        } else {
            0.0
        }
    });
    Summary {
        apgr,
        cpt50_share: c50.map(|c| c.1),
        cpt50_cost: c50.map(|c| ends.cost_at(c.0)),
        cpt80_share: c80.map(|c| c.1),
        cpt80_cost: c80.map(|c| ends.cost_at(c.0)),
        aiq: aiq(&curve.iter().map(|c| (c.0, c.2)).collect::<Vec<_>>()),
        quality_at_best_static_cost: at_best,
        savings_at_95: savings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(share: f64, cost: f64, quality: f64) -> Point {
        Point {
            strong_share: share,
            cost,
            quality,
        }
    }

    fn ends() -> Ends {
        Ends {
            cheap: p(0.0, 1.0, 0.5),
            strong: p(1.0, 11.0, 0.9),
        }
    }

    #[test]
    fn apgr_is_the_summarys_on_the_same_points() {
        let pts = [p(0.2, 2.0, 0.6), p(0.5, 5.0, 0.8), p(0.7, 8.0, 0.7)];
        let e = ends();
        let s = summarize(&pts, &e, &e.strong);
        let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.cost, p.quality)).collect();
        let cheap = (e.cheap.cost, e.cheap.quality);
        let strong = (e.strong.cost, e.strong.quality);
        let a = apgr(&xy, cheap, strong).unwrap();
        assert_eq!(Some(a), s.apgr);
        // By hand: PGR 0.25, 0.75, 0.5 at x 0.1, 0.4, 0.7, anchored at (0, 0) and (1, 1).
        let want = 0.1 * 0.125 + 0.3 * 0.5 + 0.3 * 0.625 + 0.3 * 0.75;
        assert!((a - want).abs() < 1e-12, "{a} {want}");
    }

    #[test]
    fn random_mix_line_has_apgr_one_half_and_linear_cpt() {
        let line: Vec<Point> = (0..=10)
            .map(|i| {
                let s = i as f64 / 10.0;
                p(s, 1.0 + 10.0 * s, 0.5 + 0.4 * s)
            })
            .collect();
        let e = ends();
        let s = summarize(&line, &e, &e.strong);
        assert!((s.apgr.unwrap() - 0.5).abs() < 1e-9);
        assert!((s.cpt50_share.unwrap() - 0.5).abs() < 1e-9);
        assert!((s.cpt80_share.unwrap() - 0.8).abs() < 1e-9);
        assert!((s.cpt80_cost.unwrap() - 9.0).abs() < 1e-9);
        // AIQ of the straight line: the mean of both ends' quality.
        assert!((s.aiq - 0.7).abs() < 1e-9);
        // 95 % of 0.9 = 0.855 → share 0.8875 → cost 9.875 → savings 1 − 9.875/11.
        assert!((s.savings_at_95.unwrap() - (1.0 - 9.875 / 11.0)).abs() < 1e-9);
    }

    #[test]
    fn a_better_router_scores_higher_and_the_hull_ignores_dips() {
        let e = ends();
        // Reaches strong quality at 40 % of the cost span, with a dip that the hull skips.
        let curve = vec![p(0.2, 3.0, 0.8), p(0.3, 4.0, 0.7), p(0.4, 5.0, 0.9)];
        let s = summarize(&curve, &e, &e.strong);
        assert!(s.apgr.unwrap() > 0.7);
        assert!(s.cpt50_share.unwrap() < 0.2);
        // Hull: (0,0.5) → (0.2,0.8) → (0.4,0.9) → flat 0.9 to 1.
        let want = 0.2 * 0.65 + 0.2 * 0.85 + 0.6 * 0.9;
        assert!((s.aiq - want).abs() < 1e-9, "{}", s.aiq);
        assert!((s.quality_at_best_static_cost - 0.9).abs() < 1e-9);
    }

    #[test]
    fn no_gap_means_no_pgr() {
        let e = Ends {
            cheap: p(0.0, 1.0, 0.7),
            strong: p(1.0, 2.0, 0.7),
        };
        let s = summarize(&[p(0.5, 1.5, 0.7)], &e, &e.strong);
        assert_eq!(s.apgr, None);
        assert_eq!(s.cpt50_share, None);
    }
}
