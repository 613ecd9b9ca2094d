//! Reading objects as every front end asks for them (GetObject, HeadObject, REST downloads, edge
//! fills): conditions, a byte range or a part number, an SSE-C key. S3's rules for these live
//! here once; a front end only translates its request into a [`ReadRequest`] and the
//! [`ObjectRead`] back into its response.

use std::ops::Range;

use super::objects::OpenedObject;
use super::{
    ByteStream, Conditions, CustomerKey, Error, ObjectInfo, ObjectService, Principal, Result,
};

/// A byte range as HTTP `Range` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` or, without `last`, `bytes=first-`.
    From { first: u64, last: Option<u64> },
    /// `bytes=-length`: the last `length` bytes.
    Suffix { length: u64 },
}

impl ByteRange {
    /// The bytes this range selects of an object of `size` bytes (a `last` past the end is
    /// clamped), or InvalidRange if it selects none.
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let invalid = Err(Error::InvalidRange { size });
        match self {
            Self::From { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return invalid;
                }
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                Ok(first..end)
            }
            Self::Suffix { length } => {
                if length == 0 || size == 0 {
                    return invalid;
                }
                Ok(size.saturating_sub(length)..size)
            }
        }
    }
}

/// Which bytes of the object a read wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Selection {
    #[default]
    Whole,
    Range(ByteRange),
    /// Part `n` (1-based) of a multipart object; part 1 of an object uploaded in one piece is
    /// all of it, as S3 serves it.
    Part(u32),
}

/// A read of one object.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    pub bucket: String,
    pub key: String,
    pub selection: Selection,
    pub conditions: Conditions,
    pub customer_key: Option<CustomerKey>,
}

/// What a read found: the object, the bytes selected, and (for a GET) the way to stream them.
#[derive(Debug)]
pub struct ObjectRead {
    pub info: ObjectInfo,
    /// The selected bytes; `None` for the whole object. A part's range may be empty.
    pub range: Option<Range<u64>>,
    opened: Option<OpenedObject>,
}

impl ObjectRead {
    /// How many bytes the response carries.
    pub fn content_length(&self) -> u64 {
        self.range
            .as_ref()
            .map_or(self.info.size, |r| r.end - r.start)
    }

    /// `Content-Range` for a partial response (`bytes first-last/size`); `None` for the whole
    /// object, and for an empty part, which S3 answers like an empty object.
    pub fn content_range(&self) -> Option<String> {
        let r = self.range.as_ref()?;
        let last = r.end.checked_sub(1).filter(|&last| last >= r.start)?;
        Some(format!("bytes {}-{last}/{}", r.start, self.info.size))
    }

    /// The selected bytes (empty for a HEAD).
    pub fn into_body(self) -> ByteStream {
        match self.opened {
            Some(o) => o.read(self.range.unwrap_or(0..self.info.size)),
            None => Box::pin(futures::stream::empty()),
        }
    }
}

fn invalid_part(parts: u32) -> Error {
    Error::InvalidPartNumber {
        parts: parts.max(1),
    }
}

/// The range of part `n`, from the object's part ranges (none for a single PUT).
fn part_range(info: &ObjectInfo, parts: &[Range<u64>], n: u32) -> Result<Range<u64>> {
    if info.parts_count == 0 {
        return if n == 1 {
            Ok(0..info.size)
        } else {
            Err(invalid_part(1))
        };
    }
    parts
        .get(n.wrapping_sub(1) as usize)
        .cloned()
        .ok_or_else(|| invalid_part(info.parts_count))
}

impl ObjectService {
    /// GetObject: checks the caller, the SSE-C key and the conditions, selects the bytes and
    /// opens them for streaming.
    pub async fn get_object(&self, caller: &Principal, req: ReadRequest) -> Result<ObjectRead> {
        let opened = self
            .open_object(caller, &req.bucket, &req.key, req.customer_key.as_ref())
            .await?;
        let info = opened.info();
        req.conditions.check_read(&info)?;
        let range = self.select(&info, Some(&opened), req.selection)?;
        Ok(ObjectRead {
            info,
            range,
            opened: Some(opened),
        })
    }

    /// HeadObject: the same as [`Self::get_object`] without a body. Only a part number needs the
    /// object's layout; otherwise its record alone is read.
    pub async fn head(&self, caller: &Principal, req: ReadRequest) -> Result<ObjectRead> {
        let ck = req.customer_key.as_ref();
        let (info, opened) = match req.selection {
            Selection::Part(_) => {
                let o = self.open_object(caller, &req.bucket, &req.key, ck).await?;
                (o.info(), Some(o))
            }
            _ => (
                self.head_object(caller, &req.bucket, &req.key, ck).await?,
                None,
            ),
        };
        req.conditions.check_read(&info)?;
        let range = self.select(&info, opened.as_ref(), req.selection)?;
        Ok(ObjectRead {
            info,
            range,
            opened: None,
        })
    }

    fn select(
        &self,
        info: &ObjectInfo,
        opened: Option<&OpenedObject>,
        selection: Selection,
    ) -> Result<Option<Range<u64>>> {
        match selection {
            Selection::Whole => Ok(None),
            Selection::Range(r) => r.resolve(info.size).map(Some),
            Selection::Part(n) => {
                let parts = opened.map(OpenedObject::part_ranges).unwrap_or_default();
                part_range(info, &parts, n).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ByteRange, ObjectRead, part_range};
    use crate::object::{Error, ObjectInfo};

    #[test]
    fn ranges_resolve_as_http_says() {
        let from = |first, last| ByteRange::From { first, last };
        assert_eq!(from(0, Some(9)).resolve(100).unwrap(), 0..10);
        assert_eq!(from(90, Some(500)).resolve(100).unwrap(), 90..100);
        assert_eq!(from(5, None).resolve(100).unwrap(), 5..100);
        assert_eq!(
            ByteRange::Suffix { length: 10 }.resolve(100).unwrap(),
            90..100
        );
        assert_eq!(
            ByteRange::Suffix { length: 500 }.resolve(100).unwrap(),
            0..100
        );
        for bad in [from(100, None), from(5, Some(4))] {
            assert!(matches!(
                bad.resolve(100),
                Err(Error::InvalidRange { size: 100 })
            ));
        }
        assert!(ByteRange::Suffix { length: 0 }.resolve(100).is_err());
        assert!(
            from(0, None).resolve(0).is_err(),
            "nothing to select in an empty object"
        );
    }

    #[test]
    fn parts_and_content_ranges() {
        let single = ObjectInfo {
            size: 5,
            ..ObjectInfo::default()
        };
        assert_eq!(part_range(&single, &[], 1).unwrap(), 0..5);
        assert!(matches!(
            part_range(&single, &[], 2),
            Err(Error::InvalidPartNumber { parts: 1 })
        ));
        let multi = ObjectInfo {
            size: 10,
            parts_count: 2,
            ..ObjectInfo::default()
        };
        let parts = [0..10, 10..10];
        assert_eq!(part_range(&multi, &parts, 2).unwrap(), 10..10);
        assert!(part_range(&multi, &parts, 3).is_err());
        assert!(part_range(&multi, &parts, 0).is_err());

        let read = |range| ObjectRead {
            info: multi.clone(),
            range,
            opened: None,
        };
        assert_eq!(
            read(Some(0..10)).content_range().as_deref(),
            Some("bytes 0-9/10")
        );
        assert_eq!(
            read(Some(10..10)).content_range(),
            None,
            "an empty part has none"
        );
        assert_eq!(read(Some(10..10)).content_length(), 0);
        assert_eq!(read(None).content_range(), None);
    }
}
