//! The one TTL function. Issue, renew and tokens all go through `calculate`, so the rules
//! (increment, backend TTL, mount default; caps by backend max, explicit max, mount/system
//! max, counted from the original start) live in exactly one place.

use crate::duration::format_short;
use crate::{Error, Result};

/// Inputs, all in whole seconds; 0 means "not set".
#[derive(Debug, Clone, Copy, Default)]
pub struct TtlInput {
    /// Requested increment (renew) or requested TTL (issue).
    pub increment: i64,
    /// The backend's TTL (role TTL, AWS `config/lease`, STS expiry).
    pub backend_ttl: i64,
    /// The backend's max TTL.
    pub backend_max: i64,
    /// A token's `explicit_max_ttl`.
    pub explicit_max: i64,
    /// A periodic token's period.
    pub period: i64,
    /// The mount's effective default and max (already resolved against the system values).
    pub mount_default: i64,
    pub mount_max: i64,
    /// When the lease or token was first issued (Unix seconds), and now.
    pub start: i64,
    pub now: i64,
}

/// What was granted: the TTL from now, and the cap warning if the request was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub ttl: i64,
    pub warning: Option<String>,
    /// The TTL is what was left of a max: it ends where the max does.
    pub capped: bool,
}

impl Granted {
    fn full(ttl: i64) -> Self {
        Granted {
            ttl,
            warning: None,
            capped: false,
        }
    }

    fn cut(left: i64, warning: Option<String>) -> Self {
        Granted {
            ttl: left,
            warning,
            capped: true,
        }
    }

    /// When the grant made at `now_ms` (Unix ms, the moment `TtlInput::now` was read
    /// from) ends: the TTL counted from that millisecond, except that a TTL cut to a max
    /// ends at the max's own second, never past it (a max is counted in whole seconds from
    /// the second).
    pub fn ends_at_ms(&self, now_ms: i64) -> i64 {
        if self.capped {
            now_ms
                .div_euclid(1000)
                .saturating_add(self.ttl)
                .saturating_mul(1000)
        } else {
            now_ms.saturating_add(self.ttl.saturating_mul(1000))
        }
    }
}

pub fn cap_warning(requested: i64, max: i64) -> String {
    format!(
        "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
        format_short(requested),
        format_short(max)
    )
}

/// Computes the TTL to grant. Errors (400) when the max has already passed.
pub fn calculate(i: TtlInput) -> Result<Granted> {
    if i.period > 0 {
        // Periodic tokens get their period each time, bounded only by an explicit max.
        if i.explicit_max > 0 {
            let left = i.start + i.explicit_max - i.now;
            if left <= 0 {
                return Err(Error::bad("past the max TTL, cannot renew"));
            }
            if left < i.period {
                return Ok(Granted::cut(left, Some(cap_warning(i.period, left))));
            }
        }
        return Ok(Granted::full(i.period));
    }
    let mut max = i.mount_max;
    if i.backend_max > 0 && (max == 0 || i.backend_max < max) {
        max = i.backend_max;
    }
    if i.explicit_max > 0 && (max == 0 || i.explicit_max < max) {
        max = i.explicit_max;
    }
    let ttl = if i.increment > 0 {
        i.increment
    } else if i.backend_ttl > 0 {
        i.backend_ttl
    } else {
        i.mount_default
    };
    if max == 0 {
        return Ok(Granted::full(ttl));
    }
    let left = i.start + max - i.now;
    if left <= 0 {
        return Err(Error::bad("past the max TTL, cannot renew"));
    }
    if ttl > left || ttl == 0 {
        let warning = (ttl > left).then(|| cap_warning(ttl, left));
        return Ok(Granted::cut(left, warning));
    }
    Ok(Granted::full(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> TtlInput {
        TtlInput {
            mount_default: 2_764_800,
            mount_max: 2_764_800,
            start: 1000,
            now: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            input: TtlInput,
            ttl: i64,
            warns: bool,
        }
        let cases = [
            Case {
                name: "mount default",
                input: base(),
                ttl: 2_764_800,
                warns: false,
            },
            Case {
                name: "backend ttl",
                input: TtlInput {
                    backend_ttl: 3600,
                    ..base()
                },
                ttl: 3600,
                warns: false,
            },
            Case {
                name: "increment wins",
                input: TtlInput {
                    increment: 60,
                    backend_ttl: 3600,
                    ..base()
                },
                ttl: 60,
                warns: false,
            },
            Case {
                name: "backend max caps",
                input: TtlInput {
                    increment: 7200,
                    backend_max: 3600,
                    ..base()
                },
                ttl: 3600,
                warns: true,
            },
            Case {
                name: "renew counts from start",
                input: TtlInput {
                    increment: 3600,
                    backend_max: 7200,
                    now: 1000 + 5400,
                    ..base()
                },
                ttl: 1800,
                warns: true,
            },
            Case {
                name: "explicit max",
                input: TtlInput {
                    backend_ttl: 3600,
                    explicit_max: 600,
                    ..base()
                },
                ttl: 600,
                warns: true,
            },
            Case {
                name: "period",
                input: TtlInput {
                    period: 300,
                    backend_ttl: 3600,
                    ..base()
                },
                ttl: 300,
                warns: false,
            },
            Case {
                name: "period capped by explicit max",
                input: TtlInput {
                    period: 300,
                    explicit_max: 400,
                    now: 1200,
                    ..base()
                },
                ttl: 200,
                warns: true,
            },
            Case {
                name: "mount max below default",
                input: TtlInput {
                    mount_default: 7200,
                    mount_max: 3600,
                    ..base()
                },
                ttl: 3600,
                warns: true,
            },
        ];
        for c in cases {
            let g = calculate(c.input).unwrap();
            assert_eq!(g.ttl, c.ttl, "{}", c.name);
            assert_eq!(g.warning.is_some(), c.warns, "{}", c.name);
        }
    }

    #[test]
    fn past_max_is_an_error() {
        let e = calculate(TtlInput {
            backend_max: 60,
            now: 1061,
            ..base()
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "past the max TTL, cannot renew");
    }

    #[test]
    fn a_grant_ends_at_its_millisecond_and_a_cut_one_at_the_max() {
        // Issued at 1000 s; renewed at 1030.250 s with a max of 60 s.
        let at = 1_030_250;
        let full = calculate(TtlInput {
            increment: 10,
            backend_max: 60,
            now: 1030,
            ..base()
        })
        .unwrap();
        assert_eq!(full.ends_at_ms(at), 1_040_250);
        let cut = calculate(TtlInput {
            increment: 45,
            backend_max: 60,
            now: 1030,
            ..base()
        })
        .unwrap();
        assert_eq!(cut.ttl, 30);
        assert_eq!(
            cut.ends_at_ms(at),
            1_060_000,
            "the max's second, not 250 ms past it"
        );
    }

    #[test]
    fn warning_text() {
        assert_eq!(
            cap_warning(7200, 5400),
            "TTL of \"2h\" exceeded the effective max_ttl of \"1h30m\"; TTL value is capped accordingly"
        );
    }
}
