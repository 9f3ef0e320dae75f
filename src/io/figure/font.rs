//! The one font figures are drawn with: egui's built-in Ubuntu Light, parsed once.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, OutlinedGlyph, PxScale, ScaleFont, point};

/// The font, or `None` if the built-in bytes do not parse (they always do; a figure is then
/// drawn without text rather than not at all).
pub(super) fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT).ok())
        .as_ref()
}

/// `text`'s glyphs at `size` px on a baseline at y = 0 starting at x = 0, and its advance
/// width.
pub(super) fn layout(text: &str, size: f32) -> (Vec<OutlinedGlyph>, f32) {
    let Some(font) = font() else {
        return (Vec::new(), 0.0);
    };
    let scaled = font.as_scaled(PxScale::from(size));
    let mut caret = 0.0f32;
    let mut previous: Option<GlyphId> = None;
    let mut glyphs = Vec::new();
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(previous) = previous {
            caret += scaled.kern(previous, id);
        }
        let glyph = id.with_scale_and_position(PxScale::from(size), point(caret, 0.0));
        caret += scaled.h_advance(id);
        previous = Some(id);
        if let Some(outlined) = font.outline_glyph(glyph) {
            glyphs.push(outlined);
        }
    }
    (glyphs, caret)
}

/// How wide `text` is at `size` px.
pub fn text_width(text: &str, size: f32) -> f32 {
    layout(text, size).1
}
