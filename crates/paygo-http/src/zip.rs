//! A ZIP archive of stored (uncompressed) files: what the portal's "all invoices of a
//! period" download is. Invoices are small HTML files; storing them keeps the writer a few
//! dozen lines with no dependency, and every unzip tool reads it (PKWARE APPNOTE 6.3,
//! version 2.0 features only: no ZIP64, so at most 65,535 files and 4 GiB).

use chrono::{Datelike, NaiveDate};

use crate::error::HttpError;

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as ZIP records it.
fn crc32(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }
    const TABLE: [u32; 256] = table();
    let mut c = !0u32;
    for b in data {
        c = TABLE[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// An MS-DOS date as ZIP records it (midnight of `day`; 1980 at the earliest).
fn dos_date(day: NaiveDate) -> u16 {
    let year = u16::try_from(day.year().clamp(1980, 2107) - 1980).unwrap_or(0);
    (year << 9) | ((day.month() as u16) << 5) | day.day() as u16
}

/// The archive of `files` (name, day, content), in order.
///
/// # Errors
///
/// [`HttpError::InvalidField`] beyond 65,535 files or 4 GiB, or for a name longer than
/// 65,535 bytes.
pub(crate) fn stored(files: &[(String, NaiveDate, Vec<u8>)]) -> Result<Vec<u8>, HttpError> {
    let too_big = || HttpError::InvalidField {
        field: "range",
        expected: "fewer documents: an archive holds at most 65,535 files and 4 GiB",
    };
    let count = u16::try_from(files.len()).map_err(|_| too_big())?;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, day, data) in files {
        let offset = u32::try_from(out.len()).map_err(|_| too_big())?;
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        let (crc, date) = (crc32(data), dos_date(*day));
        // Bit 11: the name is UTF-8.
        let flags: u16 = 1 << 11;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u16.to_le_bytes()); // time: midnight
        out.extend_from_slice(&date.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // no extra field
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by: 2.0
        central.extend_from_slice(&20u16.to_le_bytes()); // needed: 2.0
        central.extend_from_slice(&flags.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&date.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = u32::try_from(out.len()).map_err(|_| too_big())?;
    let central_size = u32::try_from(central.len()).map_err(|_| too_big())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // this disk, the central directory's disk
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // no comment
    u32::try_from(out.len()).map_err(|_| too_big())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_ieee_crc32() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn an_archive_lists_its_files_where_they_are() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap_or_default();
        let files = vec![
            ("INV-1.html".to_owned(), day, b"<p>one</p>".to_vec()),
            ("CN-1.html".to_owned(), day, b"two".to_vec()),
        ];
        let zip = stored(&files).unwrap_or_default();
        // The end record: two files, and the central directory where it says.
        let end = zip.len() - 22;
        assert_eq!(&zip[end..end + 4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([zip[end + 10], zip[end + 11]]), 2);
        let cd = u32::from_le_bytes([zip[end + 16], zip[end + 17], zip[end + 18], zip[end + 19]]) as usize;
        assert_eq!(&zip[cd..cd + 4], &0x0201_4b50u32.to_le_bytes());
        // The first local header's data is the file.
        assert_eq!(&zip[0..4], &0x0403_4b50u32.to_le_bytes());
        assert_eq!(&zip[30..40], b"INV-1.html");
        assert_eq!(&zip[40..50], b"<p>one</p>");
        assert_eq!(dos_date(day), ((2026 - 1980) << 9) | (12 << 5) | 3);
    }
}
