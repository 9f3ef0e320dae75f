//! The editor window at the size the project remembers.
//!
//! nice-plug-egui 0.6 cannot `#[persist]` its `EguiEditorState`, and the host asks for the
//! editor before it restores the project. So this wrapper builds a fresh egui editor each
//! time the window opens, sized from the persisted `editor_size` field, and the app writes the
//! size back there whenever the window is resized. The handle also tells the audio side when
//! the window closes, so nothing is recorded for a closed editor.

use std::error::Error;
use std::sync::{Arc, Mutex};

use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::{LogicalSize, NativeSize};
use nice_plug::editor::{
    Editor, EditorHandle, HostMethods, Modifiers, ParentWindowHandle, ResizeHint, SpawnedEditor,
    VirtualKeyCode,
};
use nice_plug::plugin::TrackInfo;
use nice_plug_egui::{EguiEditor, EguiEditorHandle, EguiEditorState, EguiNiceSettings};

use crate::params::{DEFAULT_EDITOR_SIZE, LatentChoirParams};
use crate::playback::history::HistoryShared;

use super::app::{AppHandle, MIN_SIZE};

pub struct SizedEditor {
    params: Arc<LatentChoirParams>,
    app: AppHandle,
    history: Arc<HistoryShared>,
    /// The egui editor of the open window (the last one opened, for `size()`).
    current: Mutex<Option<EguiEditor<AppHandle>>>,
}

impl SizedEditor {
    pub fn new(
        params: Arc<LatentChoirParams>,
        app: AppHandle,
        history: Arc<HistoryShared>,
    ) -> Self {
        Self {
            params,
            app,
            history,
            current: Mutex::new(None),
        }
    }

    fn remembered_size(&self) -> LogicalSize<f32> {
        let [width, height] = self
            .params
            .editor_size
            .read()
            .map(|s| *s)
            .unwrap_or(DEFAULT_EDITOR_SIZE);
        let valid = |v: f32, min: f32, default: f32| {
            if v.is_finite() {
                v.clamp(min, 4096.0)
            } else {
                default
            }
        };
        LogicalSize::new(
            valid(width, MIN_SIZE[0], DEFAULT_EDITOR_SIZE[0]),
            valid(height, MIN_SIZE[1], DEFAULT_EDITOR_SIZE[1]),
        )
    }

    fn settings() -> EguiNiceSettings {
        EguiNiceSettings::new()
            .with_tile("Latent Choir")
            .with_resize_hint(
                ResizeHint::resizable()
                    .with_min_logical_size(LogicalSize::new(MIN_SIZE[0], MIN_SIZE[1])),
            )
    }
}

impl Editor for SizedEditor {
    type Handle = Handle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn Error>> {
        let state = EguiEditorState::from_size(self.remembered_size(), 1.0);
        let editor = nice_plug_egui::create_egui_editor(
            state,
            nice_plug_egui::RepaintNotifier::new(),
            Self::settings(),
            self.app.clone(),
        )
        .ok_or("the egui editor could not be created")?;
        let spawned = editor.spawn(
            parent,
            wait_for_parent,
            fallback_scale_factor,
            gui_context,
            host,
        )?;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(editor);
        }
        self.history.set_open(true);
        Ok(SpawnedEditor {
            handle: Handle {
                inner: spawned.handle,
                history: Arc::clone(&self.history),
            },
            window: spawned.window,
        })
    }

    fn size(&self) -> NativeSize<u32> {
        if let Ok(current) = self.current.lock()
            && let Some(editor) = current.as_ref()
        {
            return editor.size();
        }
        let size = self.remembered_size();
        NativeSize::from_size(size.into(), 1.0)
    }

    fn resize_hint(&self) -> ResizeHint {
        Self::settings().resize_hint
    }

    fn track_info_updated(&self, info: TrackInfo) {
        if let Ok(current) = self.current.lock()
            && let Some(editor) = current.as_ref()
        {
            editor.track_info_updated(info);
        }
    }
}

/// The open window; dropping it (the window closed) stops the history feed.
pub struct Handle {
    inner: EguiEditorHandle,
    history: Arc<HistoryShared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.history.set_open(false);
    }
}

impl EditorHandle for Handle {
    type Window = <EguiEditorHandle as EditorHandle>::Window;
    type Error = <EguiEditorHandle as EditorHandle>::Error;

    fn run_until_closed(window: Self::Window) -> Result<(), Self::Error> {
        EguiEditorHandle::run_until_closed(window)
    }

    fn set_parent(
        &self,
        parent: ParentWindowHandle,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        self.inner.set_parent(parent, window)
    }

    fn show(&self, window: &Self::Window) -> Result<(), Self::Error> {
        self.inner.show(window)
    }

    fn hide(&self, window: &Self::Window) -> Result<(), Self::Error> {
        self.inner.hide(window)
    }

    fn set_size(
        &self,
        new_size: NativeSize<u32>,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        self.inner.set_size(new_size, window)
    }

    fn host_main_thread_callback(&self, window: &Self::Window) {
        self.inner.host_main_thread_callback(window);
    }

    fn adjust_size(
        &self,
        new_size: NativeSize<u32>,
        window: &Self::Window,
    ) -> Option<NativeSize<u32>> {
        self.inner.adjust_size(new_size, window)
    }

    fn set_fallback_scale_factor(
        &self,
        scale_factor: f64,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        self.inner.set_fallback_scale_factor(scale_factor, window)
    }

    fn on_virtual_key_from_host(
        &self,
        key_code: VirtualKeyCode,
        is_down: bool,
        modifiers: Modifiers,
    ) -> bool {
        self.inner
            .on_virtual_key_from_host(key_code, is_down, modifiers)
    }

    fn state_changed(&self) {
        self.inner.state_changed();
    }

    fn param_value_changed(&self, id: &str, normalized_value: f32) {
        self.inner.param_value_changed(id, normalized_value);
    }

    fn param_modulation_changed(&self, id: &str, modulation_offset: f32) {
        self.inner.param_modulation_changed(id, modulation_offset);
    }
}
