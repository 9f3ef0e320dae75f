//! A structural check of SF2 bytes before `rustysynth` parses them.
//!
//! `rustysynth` trusts the file: it allocates whatever a chunk header claims before reading it
//! (a garbage size can ask for gigabytes, and a failed allocation aborts the process) and slices
//! its zone tables with unchecked indices (which panics). This walk mirrors rustysynth's reader
//! exactly (`ifil`/`iver` are read as 4 bytes whatever their size; every other sub-chunk is read
//! for its size), so every size it will allocate for is bounded by the bytes actually present,
//! and checks the preset → bag → generator and instrument → bag → generator indices it will
//! slice with.

/// Why the bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckError {
    /// No RIFF/sfbk header: some other kind of file.
    NotSoundFont(String),
    /// A chunk claims more bytes than the file has left.
    Truncated(String),
    /// Inconsistent tables.
    Corrupt(String),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CheckError> {
        if n > self.remaining() {
            return Err(CheckError::Truncated(format!(
                "{what} needs {n} bytes at offset {}, only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn four_cc(&mut self, what: &str) -> Result<[u8; 4], CheckError> {
        let b = self.take(4, what)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    fn u32(&mut self, what: &str) -> Result<usize, CheckError> {
        let b = self.four_cc(what)?;
        Ok(u32::from_le_bytes(b) as usize)
    }
}

fn name(id: [u8; 4]) -> String {
    id.iter()
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect()
}

/// Where the pdta sub-chunks' data lies.
#[derive(Default)]
struct Pdta<'a> {
    phdr: Option<&'a [u8]>,
    pbag: Option<&'a [u8]>,
    pgen: Option<&'a [u8]>,
    inst: Option<&'a [u8]>,
    ibag: Option<&'a [u8]>,
    igen: Option<&'a [u8]>,
}

/// Walks one LIST chunk the way rustysynth does; `sub` sees each sub-chunk's id and data.
fn list<'a>(
    r: &mut Reader<'a>,
    kind: &[u8; 4],
    mut sub: impl FnMut([u8; 4], &'a [u8]) -> Result<(), CheckError>,
) -> Result<(), CheckError> {
    let id = r.four_cc("LIST header")?;
    if &id != b"LIST" {
        return Err(CheckError::Corrupt(format!(
            "expected a LIST chunk, found '{}'",
            name(id)
        )));
    }
    let end = r.u32("LIST size")?;
    let start = r.pos;
    let list_type = r.four_cc("LIST type")?;
    if &list_type != kind {
        return Err(CheckError::Corrupt(format!(
            "expected the '{}' list, found '{}'",
            name(*kind),
            name(list_type)
        )));
    }
    while r.pos - start < end {
        let id = r.four_cc("sub-chunk id")?;
        let size = r.u32("sub-chunk size")?;
        let read = if &id == b"ifil" || &id == b"iver" {
            4
        } else {
            size
        };
        let data = r.take(read, &format!("the '{}' chunk", name(id)))?;
        sub(id, data)?;
    }
    Ok(())
}

fn u16_at(data: &[u8], offset: usize) -> usize {
    usize::from(u16::from_le_bytes([data[offset], data[offset + 1]]))
}

/// Checks `records` (each `record` bytes, bag index at `bag_offset`) against `bag` (4-byte
/// records, generator index first) against `gen_len` generator records, the way rustysynth
/// slices them. Sizes that are not whole records are left to rustysynth, which rejects them.
fn check_indices(
    what: &str,
    records: &[u8],
    record: usize,
    bag_offset: usize,
    bag: &[u8],
    generators: &[u8],
) -> Result<(), CheckError> {
    if !records.len().is_multiple_of(record)
        || !bag.len().is_multiple_of(4)
        || !generators.len().is_multiple_of(4)
    {
        return Ok(());
    }
    let count = records.len() / record;
    let bag_count = bag.len() / 4;
    // rustysynth drops the terminal record of each table.
    let zones = bag_count.saturating_sub(1);
    let gens = (generators.len() / 4).saturating_sub(1);
    for i in 0..count.saturating_sub(1) {
        let start = u16_at(records, i * record + bag_offset);
        let end = u16_at(records, (i + 1) * record + bag_offset);
        if end > start && end > zones {
            return Err(CheckError::Corrupt(format!(
                "{what} {i} uses zones {start}..{end} of {zones}"
            )));
        }
    }
    for i in 0..zones {
        let start = u16_at(bag, i * 4);
        let end = u16_at(bag, (i + 1) * 4);
        if end > start && end > gens {
            return Err(CheckError::Corrupt(format!(
                "{what} zone {i} uses generators {start}..{end} of {gens}"
            )));
        }
    }
    Ok(())
}

pub(crate) fn check(bytes: &[u8]) -> Result<(), CheckError> {
    let mut r = Reader { bytes, pos: 0 };
    let not_sf = |what: &str| CheckError::NotSoundFont(what.to_owned());
    if bytes.len() < 12 {
        return Err(not_sf("the file is too short to be one"));
    }
    if &r.four_cc("RIFF id")? != b"RIFF" {
        return Err(not_sf("it has no RIFF header"));
    }
    r.u32("RIFF size")?;
    if &r.four_cc("RIFF type")? != b"sfbk" {
        return Err(not_sf("it is a RIFF file but not of type 'sfbk'"));
    }
    list(&mut r, b"INFO", |_, _| Ok(()))?;
    list(&mut r, b"sdta", |_, _| Ok(()))?;
    let mut p = Pdta::default();
    list(&mut r, b"pdta", |id, data| {
        match &id {
            b"phdr" => p.phdr = Some(data),
            b"pbag" => p.pbag = Some(data),
            b"pgen" => p.pgen = Some(data),
            b"inst" => p.inst = Some(data),
            b"ibag" => p.ibag = Some(data),
            b"igen" => p.igen = Some(data),
            _ => {}
        }
        Ok(())
    })?;
    if let (Some(phdr), Some(pbag), Some(pgen)) = (p.phdr, p.pbag, p.pgen) {
        check_indices("preset", phdr, 38, 24, pbag, pgen)?;
    }
    if let (Some(inst), Some(ibag), Some(igen)) = (p.inst, p.ibag, p.igen) {
        check_indices("instrument", inst, 22, 20, ibag, igen)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn list_chunk(kind: &[u8; 4], subs: &[Vec<u8>]) -> Vec<u8> {
        let mut data = kind.to_vec();
        for s in subs {
            data.extend_from_slice(s);
        }
        chunk(b"LIST", &data)
    }

    fn riff(lists: &[Vec<u8>]) -> Vec<u8> {
        let mut data = b"sfbk".to_vec();
        for l in lists {
            data.extend_from_slice(l);
        }
        chunk(b"RIFF", &data)
    }

    #[test]
    fn huge_claimed_sizes_are_refused_before_anyone_allocates() {
        let mut smpl = b"smpl".to_vec();
        smpl.extend_from_slice(&u32::MAX.to_le_bytes());
        let bytes = riff(&[list_chunk(b"INFO", &[]), list_chunk(b"sdta", &[smpl])]);
        assert!(matches!(check(&bytes), Err(CheckError::Truncated(_))));
    }

    #[test]
    fn headers_are_recognised() {
        assert!(matches!(check(b""), Err(CheckError::NotSoundFont(_))));
        assert!(matches!(
            check(b"RIFF\x04\x00\x00\x00WAVEfmt "),
            Err(CheckError::NotSoundFont(_))
        ));
        assert!(matches!(
            check(b"RIFF\x04\x00\x00\x00sfbk"),
            Err(CheckError::Truncated(_))
        ));
    }

    #[test]
    fn zone_indices_past_the_tables_are_corrupt() {
        // Two presets + terminator; preset 0 claims zones 0..5 but there is one zone.
        let mut phdr = vec![0u8; 38 * 3];
        phdr[38 + 24] = 5;
        phdr[2 * 38 + 24] = 5;
        let pbag = vec![0u8; 8];
        let pgen = vec![0u8; 8];
        let bytes = riff(&[
            list_chunk(b"INFO", &[]),
            list_chunk(b"sdta", &[]),
            list_chunk(
                b"pdta",
                &[
                    chunk(b"phdr", &phdr),
                    chunk(b"pbag", &pbag),
                    chunk(b"pgen", &pgen),
                ],
            ),
        ]);
        assert!(
            matches!(check(&bytes), Err(CheckError::Corrupt(_))),
            "{:?}",
            check(&bytes)
        );
    }
}
