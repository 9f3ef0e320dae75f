//! The editor's state and layout: prompt and model on top, parameters on the left, the live
//! text and the plots in the middle, meters at the bottom.
//!
//! Everything here runs on the GUI thread, and only while the window is open. It reads the
//! audio and worker threads through atomics and the history ring; the only locks it takes are
//! ones neither of those threads ever waits on while playing (the command channel, the worker's
//! status words, the history reader).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nice_plug::context::gui::GuiContext;
use nice_plug_egui::NiceEguiApp;

use crate::params::SessionSettings;
use crate::playback::history::HistoryShared;
use crate::project::export::{self, ExportRequest};

use super::Shared;
use super::control::Control;
use super::meters::Meters;
use super::models::ModelScan;
use super::panels::{self, Action};
use super::playback::Playback;
use super::{plots, text_view};
use crate::music::scale::key_name;

/// Smallest window the layout still fits in (logical pixels).
pub const MIN_SIZE: [f32; 2] = [760.0, 520.0];
/// Redraw rate while open: the text and plots follow the music.
const REFRESH: Duration = Duration::from_millis(33);

pub struct EditorApp {
    shared: Shared,
    /// The history ring's counters (read without taking the reader's lock).
    history_shared: Arc<HistoryShared>,
    control: Control,
    /// Set while the window is open; nice-plug hands it over in `build`.
    gui_context: Option<GuiContext>,
    request: SessionSettings,
    models: ModelScan,
    playback: Playback,
    meters: Meters,
    /// The last thing that went wrong in the editor itself (a command that could not be sent).
    problem: Option<String>,
    /// Give the prompt box the keyboard on the first frame after opening.
    focus_prompt: bool,
    /// The SoundFont path being typed.
    font_path: String,
    /// The export path being typed.
    export_path: String,
}

impl EditorApp {
    pub fn new(shared: Shared) -> Self {
        let control = Control {
            params: Arc::clone(&shared.params),
            model: Arc::clone(&shared.control),
            saved: shared.saved.clone(),
        };
        let history_shared = shared
            .history
            .lock()
            .map(|reader| Arc::clone(reader.shared()))
            .unwrap_or_default();
        let font_path = shared.params.soundfont();
        Self {
            request: shared.params.session(),
            history_shared,
            shared,
            control,
            gui_context: None,
            models: ModelScan::default(),
            playback: Playback::default(),
            meters: Meters::default(),
            problem: None,
            focus_prompt: true,
            font_path,
            export_path: String::new(),
        }
    }

    pub fn history_shared(&self) -> Arc<HistoryShared> {
        Arc::clone(&self.history_shared)
    }

    fn voice_layers(&self) -> plots::VoiceLayers {
        std::array::from_fn(|v| {
            let voice = &self.shared.params.voices[v];
            voice
                .enabled
                .value()
                .then(|| voice.layer.value().max(0) as usize)
        })
    }

    fn act(&mut self, action: Action, gui_context: &GuiContext) {
        let setter = gui_context.param_setter();
        let result = match action {
            Action::Generate => self.control.generate(&self.request, &setter),
            Action::Stop => self.control.stop(&setter),
            Action::Reset => {
                self.playback.clear();
                self.control.reset(&setter)
            }
            Action::Replay => self.control.replay(&setter),
        };
        self.problem = result.err();
    }

    fn draw(&mut self, ui: &mut egui::Ui, gui_context: &GuiContext) {
        let setter = gui_context.param_setter();
        if let Ok(mut reader) = self.shared.history.lock() {
            self.playback.drain(&mut reader);
        }
        let reading = self.meters.read(
            Instant::now(),
            self.shared.control.status(),
            self.shared.control.feed(),
            &self.history_shared,
        );

        let mut action = None;
        let mut rescan = false;
        egui::Panel::top("controls").show(ui, |ui| {
            ui.add_space(4.0);
            action = panels::prompt_bar(
                ui,
                &mut self.request,
                self.shared.control.status(),
                self.focus_prompt,
            );
            self.models.poll();
            panels::model_picker(ui, &mut self.request, &self.models, &mut rescan);
            panels::model_status(ui, self.shared.control.status(), self.problem.as_deref());
            panels::listen_status(
                ui,
                self.shared.params.listen.enabled.value(),
                &self.shared.heard,
                self.shared.control.status(),
            );
            let export = panels::export_row(
                ui,
                &mut self.export_path,
                &self.shared.exports.line(),
                &self.shared.saved.message(),
            );
            if let Some(kind) = export {
                self.shared.exports.set("Exporting…".to_owned());
                let request = ExportRequest {
                    kind,
                    path: self.export_path.trim().into(),
                };
                let (saved, status) = (self.shared.saved.clone(), &self.shared.exports);
                export::spawn(saved, request, Arc::clone(status));
            }
            ui.add_space(2.0);
        });
        self.focus_prompt = false;
        egui::Panel::bottom("meters").show(ui, |ui| {
            let frame = &self.meters.frame;
            panels::meters(
                ui,
                &reading,
                (frame.mean_ms(), frame.worst_ms()),
                &self.shared.status.snapshot().line(),
            );
        });
        egui::Panel::left("parameters")
            .resizable(true)
            .default_size(400.0)
            .show(ui, |ui| {
                let fonts = panels::Fonts {
                    path: &mut self.font_path,
                    loader: &self.shared.fonts,
                };
                let weights = panels::Weights {
                    composer: &self.shared.scores,
                    key: self
                        .shared
                        .control
                        .status()
                        .model_key()
                        .map(|(scale, root)| key_name(scale, root)),
                };
                panels::parameters(ui, &self.shared.params, &setter, fonts, weights);
            });
        let layers = self.voice_layers();
        egui::CentralPanel::default().show(ui, |ui| {
            let height = ui.available_height();
            let width = ui.available_width();
            ui.allocate_ui(egui::vec2(width, height * 0.38), |ui| {
                let phrasing = &self.shared.params.phrasing;
                let marks = text_view::Marks {
                    breath: phrasing.comma_breath.value() > 0.0,
                    cadence: phrasing.cadences.value(),
                    paragraph: phrasing.paragraph_shift.value() > 0,
                    ties: phrasing.word_ties.value(),
                };
                text_view::show(
                    ui,
                    &self.playback,
                    marks,
                    "The played text appears here, the token sounding now highlighted.",
                );
            });
            ui.allocate_ui(egui::vec2(width, height * plots::heat_map_share()), |ui| {
                plots::heat_map(ui, self.playback.recent().back(), &layers);
            });
            // The corpus behind the trajectories: the worker published the map's cloud as an
            // `Arc` in the link status (a short lock here, never on the audio thread).
            let cloud = self.shared.control.status().map_cloud();
            ui.columns(2, |columns| {
                let paths = plots::trajectories(self.playback.recent(), &layers);
                plots::trajectory_plot(
                    &mut columns[0],
                    &paths,
                    &plots::cloud_layers(&cloud, &layers),
                    plots::cloud_hint(&cloud),
                );
                plots::history_plots(&mut columns[1], self.playback.recent());
            });
        });

        if let Some(action) = action {
            self.act(action, gui_context);
        }
        if rescan {
            self.models.start();
        }
    }
}

impl NiceEguiApp for EditorApp {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        gui_context: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui_context = Some(gui_context);
        self.request = self.shared.params.session();
        self.models.start();
        self.focus_prompt = true;
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        let Some(gui_context) = self.gui_context.clone() else {
            return;
        };
        let start = Instant::now();
        ui.ctx().request_repaint_after(REFRESH);
        self.draw(ui, &gui_context);
        self.meters.frame.add(Instant::now(), start.elapsed());
    }

    fn resized(&mut self, size: nice_plug_egui::baseview::WindowSize) {
        if let Ok(mut remembered) = self.shared.params.editor_size.write() {
            *remembered = [size.logical.width as f32, size.logical.height as f32];
        }
    }

    fn editor_closed(&mut self) {
        self.gui_context = None;
    }
}

/// The app as nice-plug-egui holds it: a fresh egui editor is made each time the window opens
/// (see [`super::window`]), all sharing this one app.
#[derive(Clone)]
pub struct AppHandle(Arc<Mutex<EditorApp>>);

impl AppHandle {
    pub fn new(app: EditorApp) -> Self {
        Self(Arc::new(Mutex::new(app)))
    }
}

impl NiceEguiApp for AppHandle {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        gui_context: GuiContext,
        frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        match self.0.lock() {
            Ok(mut app) => app.build(egui_ctx, gui_context, frame),
            Err(_) => Ok(()),
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut nice_plug_egui::Frame) {
        if let Ok(mut app) = self.0.lock() {
            app.ui(ui, frame);
        }
    }

    fn resized(&mut self, size: nice_plug_egui::baseview::WindowSize) {
        if let Ok(mut app) = self.0.lock() {
            app.resized(size);
        }
    }

    fn editor_closed(&mut self) {
        if let Ok(mut app) = self.0.lock() {
            app.editor_closed();
        }
    }
}
