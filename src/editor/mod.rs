//! The egui editor: the plugin's name, its parameters and a status line. It reads the audio
//! thread's state through atomics only and never blocks it.

use std::sync::Arc;
use std::time::Duration;

use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::LogicalSize;
use nice_plug::prelude::{Param, ParamSetter};
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{EguiEditor, EguiEditorState, EguiNiceSettings, NiceEguiApp, RepaintNotifier};

use crate::params::LatentChoirParams;
use crate::status::AudioStatus;

pub type Editor = EguiEditor<EditorApp>;

const WIDTH: f32 = 720.0;
const HEIGHT: f32 = 420.0;
/// The status line shows live levels; this is how often it is redrawn while open.
const REFRESH: Duration = Duration::from_millis(100);

pub fn default_state() -> Arc<EguiEditorState> {
    EguiEditorState::from_size(LogicalSize::new(WIDTH, HEIGHT), 1.0)
}

pub fn create(
    params: Arc<LatentChoirParams>,
    status: Arc<AudioStatus>,
    state: Arc<EguiEditorState>,
) -> Option<Editor> {
    nice_plug_egui::create_egui_editor(
        state,
        RepaintNotifier::new(),
        EguiNiceSettings::new().with_tile("Latent Choir"),
        EditorApp {
            params,
            status,
            gui_context: None,
        },
    )
}

pub struct EditorApp {
    params: Arc<LatentChoirParams>,
    status: Arc<AudioStatus>,
    /// Set while the window is open; nice-plug hands it over in `build`.
    gui_context: Option<GuiContext>,
}

impl NiceEguiApp for EditorApp {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        gui_context: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui_context = Some(gui_context);
        Ok(())
    }

    fn editor_closed(&mut self) {
        self.gui_context = None;
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        let Some(gui_context) = self.gui_context.clone() else {
            return;
        };
        let setter = gui_context.param_setter();
        ui.ctx().request_repaint_after(REFRESH);

        let panel = egui::Frame::central_panel(ui.style()).inner_margin(16.0);
        panel.show(ui, |ui| {
            ui.set_min_size(ui.available_size());
            ui.heading("Latent Choir");
            ui.label("Hear a language model think.");
            ui.separator();

            egui::Grid::new("params")
                .num_columns(2)
                .spacing([16.0, 8.0])
                .show(ui, |ui| {
                    param_row(ui, &self.params.gain, &setter);
                    param_row(ui, &self.params.thru, &setter);
                    param_row(ui, &self.params.midi_thru, &setter);
                });

            ui.with_layout(egui::Layout::bottom_up(egui::Align::LEFT), |ui| {
                ui.label(self.status.snapshot().line());
                ui.separator();
            });
        });
    }
}

fn param_row(ui: &mut egui::Ui, param: &impl Param, setter: &ParamSetter) {
    ui.label(param.name());
    ui.add(ParamSlider::for_param(param, setter).with_width(220.0));
    ui.end_row();
}
