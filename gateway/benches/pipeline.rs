//! Per-core throughput of each stage of the data path, so a regression shows in isolation:
//! AES-256-GCM chunks (seal/open), SHA-256 (fragment names), MD5 (ETags), CRC32C (checksums),
//! and Reed-Solomon encode / degraded decode for the cess profile (4+8 over a 32 MiB segment).
//! The `md-5` crate and `reed-solomon-simd` run next to what deoss uses, to keep the choices
//! honest.
//!
//! Run: `cargo bench -p deoss-gateway --bench pipeline` (prints a markdown table).

use std::hint::black_box;
use std::time::{Duration, Instant};

use deoss::crypto::envelope::{CIPHER_CHUNK, PLAIN_CHUNK};
use deoss::crypto::{Binding, ChunkCipher};
use deoss::erasure::{self, Codecs};
use deoss::object::digest::Md5;
use deoss::store::FragmentHash;
use md5::Digest as _;

const MIB: usize = 1024 * 1024;
/// Each measurement repeats for at least this long and reports the best pass (least disturbed).
const MIN_TIME: Duration = Duration::from_millis(1500);

fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Best throughput in GB/s of `f` processing `bytes` per call.
fn measure(bytes: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let mut best = f64::MAX;
    let started = Instant::now();
    let mut passes = 0;
    while started.elapsed() < MIN_TIME || passes < 3 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        passes += 1;
    }
    bytes as f64 / best / 1e9
}

fn main() {
    let mut rows: Vec<(&str, String, f64)> = Vec::new();
    let segment = data(32 * MIB);

    // AES-256-GCM, sealing 65,520-byte chunks in place as the upload path does.
    let cipher = ChunkCipher::new(
        &[7; 32],
        [1; 7],
        Binding {
            bucket: "b",
            key: "k",
            version_id: "v",
            part: 0,
        },
    );
    let chunks = segment.len() / CIPHER_CHUNK;
    let mut sealed = segment.clone();
    let gbps = measure(chunks * PLAIN_CHUNK, || {
        for (i, c) in sealed.chunks_mut(CIPHER_CHUNK).enumerate() {
            cipher.seal(i as u64, false, c).unwrap();
        }
    });
    rows.push(("AES-256-GCM seal (ring)", "64 KiB chunks".into(), gbps));
    for (i, c) in sealed.chunks_mut(CIPHER_CHUNK).enumerate() {
        cipher.seal(i as u64, false, c).unwrap();
    }
    // Opening is destructive: each pass opens a fresh copy (the memcpy is included).
    let mut copy = sealed.clone();
    let gbps = measure(chunks * PLAIN_CHUNK, || {
        copy.copy_from_slice(&sealed);
        for (i, c) in copy.chunks_mut(CIPHER_CHUNK).enumerate() {
            black_box(cipher.open(i as u64, false, c).unwrap());
        }
    });
    rows.push((
        "AES-256-GCM open (ring)",
        "64 KiB chunks, incl. a memcpy".into(),
        gbps,
    ));

    let gbps = measure(segment.len(), || {
        black_box(FragmentHash::of(&segment));
    });
    rows.push(("SHA-256 (ring)", "segment hash, one stream".into(), gbps));
    // The 12 fragments of a cess segment are named together, four SHA-NI streams interleaved.
    let fragments: Vec<&[u8]> = segment
        .chunks(segment.len() / 4)
        .chain(segment.chunks(segment.len() / 8))
        .collect();
    let gbps = measure(segment.len() * 2, || {
        black_box(FragmentHash::of_many(&fragments));
    });
    rows.push((
        "SHA-256 (tape-sha256)",
        "fragment names, 12 at once".into(),
        gbps,
    ));
    let gbps = measure(segment.len(), || {
        black_box(md5::Md5::digest(&segment));
    });
    rows.push(("MD5 (md-5)", "reference".into(), gbps));
    let gbps = measure(segment.len(), || {
        black_box(Md5::digest(&segment));
    });
    rows.push(("MD5 (deoss)", "ETags, serial per object".into(), gbps));
    let gbps = measure(segment.len(), || {
        black_box(crc_fast::checksum(
            crc_fast::CrcAlgorithm::Crc32Iscsi,
            &segment,
        ));
    });
    rows.push(("CRC32C (crc-fast)", "x-amz-checksum-crc32c".into(), gbps));

    // Reed-Solomon, cess profile: 4 data fragments of 8 MiB -> 8 parity fragments.
    let (k, m, f) = (4, 8, 8 * MIB);
    let rs = Codecs::default().get(k, m).unwrap();
    let shards: Vec<&[u8]> = segment.chunks(f).collect();
    let mut parity = vec![vec![0u8; f]; m];
    let gbps = measure(k * f, || {
        let mut outputs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        erasure::encode(&rs, &shards, &mut outputs).unwrap()
    });
    rows.push((
        "RS 4+8 encode (reed-solomon-erasure)",
        "input bytes, 256 KiB slices".into(),
        gbps,
    ));
    // Rebuild into preallocated data buffers (present = false) from the parity (present = true).
    let mut lost = vec![vec![0u8; f]; k];
    let mut par = parity.clone();
    let gbps = measure(k * f, || {
        let mut slots: Vec<(&mut [u8], bool)> =
            lost.iter_mut().map(|d| (d.as_mut_slice(), false)).collect();
        slots.extend(par.iter_mut().map(|p| (p.as_mut_slice(), true)));
        rs.reconstruct_data(&mut slots).unwrap();
    });
    assert!(lost.iter().zip(&shards).all(|(a, b)| a.as_slice() == *b));
    rows.push((
        "RS 4+8 decode, all data lost (reed-solomon-erasure)",
        "output bytes".into(),
        gbps,
    ));

    let gbps = measure(k * f, || {
        black_box(reed_solomon_simd::encode(k, m, shards.iter()).unwrap());
    });
    rows.push((
        "RS 4+8 encode (reed-solomon-simd)",
        "input bytes, whole shards".into(),
        gbps,
    ));
    let recovery = reed_solomon_simd::encode(k, m, shards.iter()).unwrap();
    let gbps = measure(k * f, || {
        let restored = reed_solomon_simd::decode(
            k,
            m,
            std::iter::empty::<(usize, &[u8])>(),
            recovery.iter().enumerate().take(k),
        )
        .unwrap();
        black_box(restored);
    });
    rows.push((
        "RS 4+8 decode, all data lost (reed-solomon-simd)",
        "output bytes".into(),
        gbps,
    ));

    println!("| stage | unit | GB/s per core |");
    println!("|---|---|---:|");
    for (stage, unit, gbps) in rows {
        println!("| {stage} | {unit} | {gbps:.2} |");
    }
}
