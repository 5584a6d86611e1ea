//! `--rounds N`: each row measured N times, ours then its peers, alternating, and the
//! repetitions of all rounds pooled before the medians and ratios are taken.
//!
//! Why: on the shared 2-core cloud VMs the sessions get, the machine's speed drifts
//! over minutes (other tenants); one pass measures ours and the peer a few seconds
//! apart, so a drift between the two lands in the ratio. On AMD EPYC (Zen 3), two
//! one-pass tables twenty minutes apart gave the GPT-2 step 1.00x and 1.38x PyTorch,
//! the 2-rank nanoGPT step 1.96x and 1.08x one rank. Alternating puts both sides in
//! every stretch of time the run covers.

use super::peers::PeerResult;
use super::run::Ours;
use super::stats::Stats;

/// One measurement of ours from several rounds: the first measured round's record
/// with every measured round's repetition times, and the highest peak RSS. All rounds
/// skipped: the first round's skip.
pub fn merge_ours(rounds: Vec<Ours>) -> Ours {
    let times: Vec<f64> = rounds
        .iter()
        .filter(|r| r.skipped.is_none())
        .flat_map(|r| r.times_s.iter().copied())
        .collect();
    let peak = rounds.iter().filter_map(|r| r.peak_rss_bytes).max();
    let first_measured = rounds.iter().position(|r| r.skipped.is_none()).unwrap_or(0);
    let mut merged = rounds
        .into_iter()
        .nth(first_measured)
        .expect("at least one round");
    if merged.skipped.is_none() {
        merged.stats = Stats::of(&times);
        merged.times_s = times;
        merged.peak_rss_bytes = peak;
    }
    merged
}

/// The peers of the first round, each with the repetition times of the same peer in
/// every round where it measured. A peer the first round skipped stays skipped.
pub fn merge_peers(rounds: Vec<Vec<PeerResult>>) -> Vec<PeerResult> {
    let mut rounds = rounds.into_iter();
    let Some(first) = rounds.next() else {
        return Vec::new();
    };
    let later: Vec<Vec<PeerResult>> = rounds.collect();
    first
        .into_iter()
        .map(|mut p| {
            if p.skipped.is_some() {
                return p;
            }
            for round in &later {
                if let Some(same) = round
                    .iter()
                    .find(|q| q.peer == p.peer && q.skipped.is_none())
                {
                    p.times_s.extend_from_slice(&same.times_s);
                    p.peak_rss_bytes = p.peak_rss_bytes.max(same.peak_rss_bytes);
                }
            }
            p.stats = Stats::of(&p.times_s);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(times: &[f64], rss: u64) -> Ours {
        let mut o = Ours::skipped(String::new());
        o.skipped = None;
        o.times_s = times.to_vec();
        o.stats = Stats::of(times);
        o.peak_rss_bytes = Some(rss);
        o
    }

    fn peer(name: &str, times: &[f64], skipped: Option<&str>) -> PeerResult {
        PeerResult {
            peer: name.into(),
            stats: Stats::of(times),
            times_s: times.to_vec(),
            work: 1.0,
            peak_rss_bytes: None,
            skipped: skipped.map(str::to_string),
        }
    }

    #[test]
    fn rounds_pool_their_repetitions() {
        let o = merge_ours(vec![
            ours(&[1.0, 2.0], 10),
            Ours::skipped("timed out".into()),
            ours(&[4.0, 5.0], 30),
        ]);
        assert_eq!(o.times_s, vec![1.0, 2.0, 4.0, 5.0]);
        let s = o.stats.unwrap();
        assert_eq!((s.median, s.n), (3.0, 4));
        assert_eq!(o.peak_rss_bytes, Some(30));

        let p = merge_peers(vec![
            vec![
                peer("torch", &[2.0], None),
                peer("numpy", &[], Some("absent")),
            ],
            vec![peer("torch", &[4.0], None), peer("numpy", &[1.0], None)],
        ]);
        assert_eq!(p[0].times_s, vec![2.0, 4.0]);
        assert_eq!(p[0].stats.unwrap().median, 3.0);
        assert_eq!(p[1].skipped.as_deref(), Some("absent"));
    }

    #[test]
    fn a_row_skipped_in_every_round_keeps_the_first_reason() {
        let o = merge_ours(vec![
            Ours::skipped("first".into()),
            Ours::skipped("second".into()),
        ]);
        assert_eq!(o.skipped.as_deref(), Some("first"));
    }
}
