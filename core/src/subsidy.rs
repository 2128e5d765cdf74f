//! Block subsidy: the initial reward halves every `halving_interval` blocks.

use crate::amount::{Amount, Height};
use crate::spec::ChainSpec;

/// New coins a block at `height` may create (before fees).
pub fn block_subsidy(spec: &ChainSpec, height: Height) -> Amount {
    let halvings = height.0 / spec.halving_interval.max(1);
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_units(spec.initial_subsidy.units() >> halvings)
}

/// Total coins created by subsidies in blocks `1..=height` (genesis pays none).
pub fn total_supply_at(spec: &ChainSpec, height: Height) -> Amount {
    let interval = u64::from(spec.halving_interval.max(1));
    let mut total: u64 = 0;
    let mut remaining = height.as_u64();
    let mut start: u64 = 1;
    let mut era: u32 = 0;
    while remaining > 0 && era < 64 {
        let era_end = (u64::from(era) + 1) * interval - 1;
        // `era_end + 1 - start`, not `era_end - start + 1`: with an interval of
        // 1 the first era holds only genesis, which pays nothing, so it is empty.
        let in_era = (era_end + 1 - start).min(remaining);
        total = total.saturating_add(in_era.saturating_mul(spec.initial_subsidy.units() >> era));
        remaining -= in_era;
        start = era_end + 1;
        era += 1;
    }
    Amount::from_units(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::MAX_MONEY;

    #[test]
    fn halves_on_schedule() {
        let spec = ChainSpec::regtest();
        let i = spec.halving_interval;
        assert_eq!(block_subsidy(&spec, Height(1)), spec.initial_subsidy);
        assert_eq!(block_subsidy(&spec, Height(i - 1)), spec.initial_subsidy);
        assert_eq!(block_subsidy(&spec, Height(i)).units(), spec.initial_subsidy.units() / 2);
        assert_eq!(block_subsidy(&spec, Height(i * 64)), Amount::ZERO);
    }

    #[test]
    fn supply_matches_sum_and_stays_below_max_money() {
        for spec in [ChainSpec::regtest(), ChainSpec::devnet(), ChainSpec::testnet()] {
            let h = spec.halving_interval * 3 + 7;
            let summed: u64 = (1..=h).map(|x| block_subsidy(&spec, Height(x)).units()).sum();
            assert_eq!(total_supply_at(&spec, Height(h)).units(), summed);
            let all = total_supply_at(&spec, Height(u32::MAX));
            assert!(all <= MAX_MONEY, "{}: {all}", spec.name);
        }
    }

    /// Found by mutation testing: a spec file with `halving_interval: 1`
    /// (accepted by the spec check) underflowed here and panicked at load.
    #[test]
    fn supply_matches_sum_for_the_smallest_halving_intervals() {
        for interval in [1, 2, 3] {
            let spec = ChainSpec { halving_interval: interval, ..ChainSpec::regtest() };
            for h in [0, 1, 2, 5, 70, 200] {
                let summed: u64 = (1..=h).map(|x| block_subsidy(&spec, Height(x)).units()).sum();
                assert_eq!(total_supply_at(&spec, Height(h)).units(), summed, "interval {interval}, height {h}");
            }
            assert!(total_supply_at(&spec, Height(u32::MAX)) <= MAX_MONEY);
        }
    }
}
