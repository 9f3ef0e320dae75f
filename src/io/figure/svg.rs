//! A [`Figure`] as SVG 1.1 text: one element per shape, groups as `<g class=…>`, numbers
//! with two decimals so the same figure gives the same bytes.

use std::fmt::Write;

use super::{Anchor, Colour, Figure, Shape};

/// The SVG document of `figure`.
pub fn svg(figure: &Figure) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Ubuntu, 'Ubuntu Light', sans-serif">
<title>{title}</title>
<rect x="0" y="0" width="{w}" height="{h}" fill="{bg}"/>"#,
        w = figure.width,
        h = figure.height,
        title = escape(&figure.title),
        bg = figure.background.hex(),
    );
    for shape in &figure.shapes {
        write_shape(&mut out, shape);
    }
    out.push_str("</svg>\n");
    out
}

fn paint(attribute: &str, colour: Colour) -> String {
    if colour.a >= 1.0 {
        format!(r#"{attribute}="{}""#, colour.hex())
    } else {
        format!(
            r#"{attribute}="{}" {attribute}-opacity="{:.3}""#,
            colour.hex(),
            colour.a.clamp(0.0, 1.0)
        )
    }
}

fn write_shape(out: &mut String, shape: &Shape) {
    match shape {
        Shape::Rect {
            x,
            y,
            w,
            h,
            fill,
            stroke,
        } => {
            let fill = fill.map_or_else(|| r#"fill="none""#.to_owned(), |c| paint("fill", c));
            let stroke = stroke.map_or_else(String::new, |c| format!(" {}", paint("stroke", c)));
            let _ = writeln!(
                out,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" {fill}{stroke}/>"#
            );
        }
        Shape::Circle { x, y, r, fill } => {
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.2}" cy="{y:.2}" r="{r:.2}" {}/>"#,
                paint("fill", *fill)
            );
        }
        Shape::Line {
            points,
            colour,
            width,
        } => {
            let list: Vec<String> = points
                .iter()
                .map(|[x, y]| format!("{x:.2},{y:.2}"))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" {} stroke-width="{width:.2}" stroke-linejoin="round" stroke-linecap="round"/>"#,
                list.join(" "),
                paint("stroke", *colour)
            );
        }
        Shape::Text {
            x,
            y,
            text,
            size,
            colour,
            anchor,
            vertical,
        } => {
            let anchor = match anchor {
                Anchor::Start => "start",
                Anchor::Middle => "middle",
                Anchor::End => "end",
            };
            let turn = if *vertical {
                format!(r#" transform="rotate(-90 {x:.2} {y:.2})""#)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                r#"<text x="{x:.2}" y="{y:.2}" font-size="{size:.1}" text-anchor="{anchor}" xml:space="preserve" {}{turn}>{}</text>"#,
                paint("fill", *colour),
                escape(text)
            );
        }
        Shape::Group { class, shapes } => {
            let _ = writeln!(out, r#"<g class="{}">"#, escape(class));
            for shape in shapes {
                write_shape(out, shape);
            }
            out.push_str("</g>\n");
        }
    }
}

/// Text as XML character data: markup characters escaped, control characters (not allowed
/// in XML 1.0) dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_are_made_safe() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn shapes_become_elements() {
        let figure = Figure {
            width: 10,
            height: 20,
            background: Colour::rgb(255, 255, 255),
            title: "t".to_owned(),
            shapes: vec![Shape::Group {
                class: "g",
                shapes: vec![
                    Shape::Circle {
                        x: 1.0,
                        y: 2.0,
                        r: 3.0,
                        fill: Colour::rgb(1, 2, 3).alpha(0.5),
                    },
                    Shape::Text {
                        x: 0.0,
                        y: 5.0,
                        text: "<hi>".to_owned(),
                        size: 10.0,
                        colour: Colour::rgb(0, 0, 0),
                        anchor: Anchor::Middle,
                        vertical: true,
                    },
                ],
            }],
        };
        let text = svg(&figure);
        assert!(text.contains(r#"<g class="g">"#), "{text}");
        assert!(text.contains(
            r##"<circle cx="1.00" cy="2.00" r="3.00" fill="#010203" fill-opacity="0.500"/>"##
        ));
        assert!(text.contains("&lt;hi&gt;</text>") && text.contains("rotate(-90 0.00 5.00)"));
    }
}
