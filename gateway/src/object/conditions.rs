//! Conditional requests: `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`
//! on reads (RFC 9110's order, 304 for the negatives), and their `x-amz-copy-source-if-*`
//! counterparts on copies (S3's own rules, 412 throughout).

use super::{Error, ObjectInfo, Result};

/// The conditions of a request. An ETag condition is `*` or a comma-separated list of ETags,
/// quoted or not; times are in milliseconds (compared at a second's resolution, as HTTP dates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since_ms: Option<i64>,
    pub if_unmodified_since_ms: Option<i64>,
}

/// `x-amz-copy-source-if-*`, which S3 evaluates by its own rules (see [`Self::check`]).
pub type CopySourceConditions = Conditions;

fn etag_matches(condition: &str, etag: &str) -> bool {
    condition
        .split(',')
        .map(str::trim)
        .any(|w| w == "*" || w.trim_start_matches("W/").trim_matches('"') == etag)
}

impl Conditions {
    fn modified_after(info: &ObjectInfo, ms: i64) -> bool {
        info.last_modified_ms / 1000 > ms / 1000
    }

    /// A read's conditions, in RFC 9110's order: a failed If-Match (or, without one, a failed
    /// If-Unmodified-Since) is 412; then a matching If-None-Match (or, without one, an
    /// If-Modified-Since the object is not newer than) is 304 Not Modified.
    pub fn check_read(&self, info: &ObjectInfo) -> Result<()> {
        match (&self.if_match, self.if_unmodified_since_ms) {
            (Some(m), _) if !etag_matches(m, &info.etag) => return Err(Error::PreconditionFailed),
            (None, Some(t)) if Self::modified_after(info, t) => {
                return Err(Error::PreconditionFailed);
            }
            _ => {}
        }
        let not_modified = match (&self.if_none_match, self.if_modified_since_ms) {
            (Some(m), _) => etag_matches(m, &info.etag),
            (None, Some(t)) => !Self::modified_after(info, t),
            _ => false,
        };
        if not_modified {
            return Err(Error::NotModified {
                etag: info.etag.clone(),
                last_modified_ms: info.last_modified_ms,
            });
        }
        Ok(())
    }

    /// A copy source's conditions, as S3 evaluates them: an If-Match that holds wins over a
    /// failing If-Unmodified-Since, and an If-None-Match that holds over a failing
    /// If-Modified-Since; every failure is 412.
    pub fn check(&self, info: &ObjectInfo) -> Result<()> {
        match (&self.if_match, self.if_unmodified_since_ms) {
            (Some(m), _) if !etag_matches(m, &info.etag) => return Err(Error::PreconditionFailed),
            (None, Some(t)) if Self::modified_after(info, t) => {
                return Err(Error::PreconditionFailed);
            }
            _ => {}
        }
        match (&self.if_none_match, self.if_modified_since_ms) {
            (Some(m), _) if etag_matches(m, &info.etag) => Err(Error::PreconditionFailed),
            (None, Some(t)) if !Self::modified_after(info, t) => Err(Error::PreconditionFailed),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Conditions;
    use crate::object::{Error, ObjectInfo};

    fn info() -> ObjectInfo {
        ObjectInfo {
            etag: "abc".into(),
            last_modified_ms: 10_500,
            ..ObjectInfo::default()
        }
    }

    fn c(m: Option<&str>, n: Option<&str>, ims: Option<i64>, ius: Option<i64>) -> Conditions {
        Conditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
            if_modified_since_ms: ims,
            if_unmodified_since_ms: ius,
        }
    }

    #[test]
    fn reads_follow_rfc_9110() {
        let i = info();
        assert!(c(Some("\"abc\""), None, None, None).check_read(&i).is_ok());
        assert!(
            c(Some("x, \"abc\""), None, None, None)
                .check_read(&i)
                .is_ok()
        );
        assert!(c(Some("*"), None, None, None).check_read(&i).is_ok());
        let failed = c(Some("\"zzz\""), None, None, None).check_read(&i);
        assert!(matches!(failed, Err(Error::PreconditionFailed)));
        // If-Match that holds beats a failing If-Unmodified-Since.
        assert!(c(Some("abc"), None, None, Some(0)).check_read(&i).is_ok());
        let failed = c(None, None, None, Some(9_999)).check_read(&i);
        assert!(matches!(failed, Err(Error::PreconditionFailed)));
        // The same second is not "modified since".
        assert!(c(None, None, None, Some(10_000)).check_read(&i).is_ok());
        let nm = c(None, Some("\"abc\""), None, None).check_read(&i);
        assert!(matches!(nm, Err(Error::NotModified { .. })), "{nm:?}");
        assert!(
            c(None, Some("other"), Some(99_000), None)
                .check_read(&i)
                .is_ok()
        );
        let nm = c(None, None, Some(10_999), None).check_read(&i);
        assert!(matches!(nm, Err(Error::NotModified { .. })));
        assert!(c(None, None, Some(9_000), None).check_read(&i).is_ok());
    }

    #[test]
    fn copies_follow_s3() {
        let i = info();
        assert!(c(Some("abc"), None, None, Some(0)).check(&i).is_ok());
        assert!(c(None, Some("zzz"), Some(99_000), None).check(&i).is_ok());
        let failed = c(None, Some("abc"), None, None).check(&i);
        assert!(matches!(failed, Err(Error::PreconditionFailed)));
        let failed = c(None, None, Some(10_999), None).check(&i);
        assert!(matches!(failed, Err(Error::PreconditionFailed)));
    }
}
