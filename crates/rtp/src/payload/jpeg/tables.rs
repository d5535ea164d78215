//! RFC 2435 quantization tables: the RFC's `MakeTables(q)` (the JPEG
//! standard's tables K.1 and K.2 scaled by a quality factor), finding the Q
//! that gave a JPEG its tables, and choosing the Q a payloader sends.

/// The Q value that says "tables in-band, possibly different every frame".
pub const Q_DYNAMIC: u8 = 255;

/// zigzag position → natural (row-major) position, as in the RFC's appendix A.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// JPEG standard table K.1 (luminance quantizer), natural order.
const LUMA_QUANTIZER: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// JPEG standard table K.2 (chrominance quantizer), natural order.
const CHROMA_QUANTIZER: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// The RFC 2435 `MakeTables(q)`: luma and chroma tables for Q 1..=99, in
/// zigzag order as a DQT segment holds them. Q outside 1..=99 is clamped.
pub fn make_tables(q: u8) -> ([u8; 64], [u8; 64]) {
    let factor = u32::from(q.clamp(1, 99));
    let scale = if factor < 50 {
        5000 / factor
    } else {
        200 - factor * 2
    };
    let mut luma = [0u8; 64];
    let mut chroma = [0u8; 64];
    for i in 0..64 {
        let l = (u32::from(LUMA_QUANTIZER[ZIGZAG[i]]) * scale + 50) / 100;
        let c = (u32::from(CHROMA_QUANTIZER[ZIGZAG[i]]) * scale + 50) / 100;
        luma[i] = l.clamp(1, 255) as u8;
        chroma[i] = c.clamp(1, 255) as u8;
    }
    (luma, chroma)
}

/// The Q in 1..=99 whose `MakeTables` gives exactly these 8-bit tables, if any.
pub fn standard_q(luma: &[u8], chroma: &[u8]) -> Option<u8> {
    if luma.len() != 64 || chroma.len() != 64 {
        return None;
    }
    (1..=99u8).find(|&q| {
        let (l, c) = make_tables(q);
        l[..] == *luma && c[..] == *chroma
    })
}

/// A quantization table as a DQT segment holds it (zigzag order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantTable<'a> {
    /// True for 16-bit entries (128 bytes), false for 8-bit (64 bytes).
    pub sixteen_bit: bool,
    /// The entries.
    pub data: &'a [u8],
}

/// Quantization tables of a frame, as its DQT holds them (zigzag order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tables {
    /// Bit 0: luma table is 16-bit; bit 1: chroma table is 16-bit.
    pub(crate) precision: u8,
    /// The table of the luma component.
    pub(crate) luma: Vec<u8>,
    /// The table both chroma components share.
    pub(crate) chroma: Vec<u8>,
}

impl Tables {
    /// `MakeTables(q)` as 8-bit tables.
    pub(crate) fn for_q(q: u8) -> Self {
        let (luma, chroma) = make_tables(q);
        Self {
            precision: 0,
            luma: luma.to_vec(),
            chroma: chroma.to_vec(),
        }
    }
}

/// How a payloader sends the quantization tables of a set of frames.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QDecision {
    luma: Vec<u8>,
    chroma: Vec<u8>,
    /// Q 1..=99, or [`Q_DYNAMIC`] with the tables in-band.
    q: u8,
}

/// Picks the Q a payloader sends, remembering the answer for the last tables
/// (an encoder's tables rarely change, and the search costs 99 table builds).
#[derive(Debug, Clone, Default)]
pub(crate) struct QChooser {
    last: Option<QDecision>,
}

impl QChooser {
    /// The Q the last frame went out with (`None` before the first).
    pub(crate) fn last_q(&self) -> Option<u8> {
        self.last.as_ref().map(|d| d.q)
    }

    /// Q for a frame with these tables: the standard Q whose `MakeTables`
    /// gives them, else [`Q_DYNAMIC`] (tables in-band).
    pub(crate) fn choose(&mut self, luma: QuantTable<'_>, chroma: QuantTable<'_>) -> u8 {
        if let Some(d) = &self.last {
            if d.luma == luma.data && d.chroma == chroma.data {
                return d.q;
            }
        }
        let standard = (!luma.sixteen_bit && !chroma.sixteen_bit)
            .then(|| standard_q(luma.data, chroma.data))
            .flatten();
        let q = standard.unwrap_or(Q_DYNAMIC);
        self.last = Some(QDecision {
            luma: luma.data.to_vec(),
            chroma: chroma.data.to_vec(),
            q,
        });
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_tables_matches_libjpeg_scaling() {
        // Q 50 is the standard table itself, in zigzag order.
        let (l, c) = make_tables(50);
        assert_eq!(&l[..6], &[16, 11, 12, 14, 12, 10]);
        assert_eq!(&c[..4], &[17, 18, 18, 24]);
        // Q 85: scale 30; 16 * 30 / 100 = 4.8 → 5.
        let (l, _) = make_tables(85);
        assert_eq!(l[0], 5);
        // Low Q clamps at 255, high Q at 1.
        assert_eq!(make_tables(1).0[63], 255);
        assert_eq!(make_tables(99).0[0], 1);
        assert_eq!(standard_q(&make_tables(73).0, &make_tables(73).1), Some(73));
        assert_eq!(standard_q(&[1; 64], &[1; 64]), None);
    }
}
