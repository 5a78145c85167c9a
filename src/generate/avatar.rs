//! Avatars rendered on demand, so every voter and candidate has a picture and
//! the dashboard needs no internet (the original linked randomuser.me photos).

use std::fmt::Write as _;

/// A 128x128 self-contained SVG: a background colour chosen by hashing
/// `kind_seed` (the voter or candidate id), a head-and-shoulders silhouette
/// and the initials of `label` (the name). The label is XML-escaped: names
/// come from imports and may hold `&`, quotes or markup.
pub fn avatar_svg(kind_seed: &str, label: &str) -> String {
    let hash = fnv1a(kind_seed.as_bytes());
    let hue = (hash % 360) as f64;
    let saturation = 0.45 + ((hash >> 16) % 20) as f64 / 100.0;
    let lightness = 0.38 + ((hash >> 32) % 10) as f64 / 100.0;
    let (r, g, b) = hsl_to_rgb(hue, saturation, lightness);
    let name = escape_xml(label);
    let initials = escape_xml(&initials(label));

    let mut svg = String::with_capacity(900);
    let _ = write!(
        svg,
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128" width="128" height="128" role="img" aria-label="{name}">"##,
            r##"<title>{name}</title>"##,
            // The clip id carries the hash so two avatars inlined in one page do not share it.
            r##"<defs><clipPath id="a{hash:016x}"><circle cx="64" cy="64" r="64"/></clipPath></defs>"##,
            r##"<g clip-path="url(#a{hash:016x})">"##,
            r##"<rect width="128" height="128" fill="#{r:02x}{g:02x}{b:02x}"/>"##,
            r##"<circle cx="64" cy="47" r="23" fill="#ffffff" fill-opacity="0.88"/>"##,
            r##"<path d="M14 128C14 96 36 77 64 77S114 96 114 128Z" fill="#ffffff" fill-opacity="0.88"/>"##,
            r##"<text x="64" y="113" text-anchor="middle" font-family="system-ui,-apple-system,'Segoe UI',sans-serif" font-size="22" font-weight="700" fill="#{r:02x}{g:02x}{b:02x}">{initials}</text>"##,
            r##"</g></svg>"##,
        ),
        name = name,
        hash = hash,
        r = r,
        g = g,
        b = b,
        initials = initials,
    );
    svg
}

/// First letter of the first and of the last word: "Mary Ann O'Hara" -> "MO".
fn initials(label: &str) -> String {
    let first_letter = |word: &str| {
        word.chars()
            .find(|c| c.is_alphanumeric())
            .or_else(|| word.chars().next())
    };
    let mut words = label.split_whitespace();
    let first = words.next().and_then(first_letter);
    let last = words.next_back().and_then(first_letter);
    first
        .into_iter()
        .chain(last)
        .flat_map(char::to_uppercase)
        .collect()
}

pub(crate) fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters even escaped.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match h as u32 / 60 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let to_byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to_byte(r), to_byte(g), to_byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avatar_is_deterministic_and_self_contained() {
        let a = avatar_svg("0000-1", "Mary Smith");
        assert_eq!(a, avatar_svg("0000-1", "Mary Smith"));
        assert_ne!(
            a,
            avatar_svg("0000-2", "Mary Smith"),
            "colour follows the id"
        );
        assert!(a.starts_with("<svg ") && a.ends_with("</svg>"));
        assert!(a.contains(r#"viewBox="0 0 128 128""#));
        assert!(a.contains(">MS</text>"), "{a}");
        assert!(!a.contains("href"), "no external references");
        assert_eq!(a.matches('<').count(), a.matches('>').count());
    }

    #[test]
    fn hostile_labels_are_escaped() {
        let a = avatar_svg("x", "<script>alert(1)</script> O'Hara & \"Co\"");
        assert!(!a.contains("<script"), "{a}");
        assert!(
            a.contains("&lt;script&gt;alert(1)&lt;/script&gt; O&apos;Hara &amp; &quot;Co&quot;")
        );
        let b = avatar_svg("y", "\"><svg onload=alert(1)>");
        assert!(!b.contains("<svg onload"), "{b}");
        assert_eq!(b.matches("<svg").count(), 1);
    }

    #[test]
    fn initials_cover_odd_names() {
        assert_eq!(initials("Mary Ann O'Hara"), "MO");
        assert_eq!(initials("Cher"), "C");
        assert_eq!(initials("  "), "");
        assert_eq!(initials("émile zola"), "ÉZ");
        assert_eq!(avatar_svg("z", "").matches("</text>").count(), 1);
    }
}
