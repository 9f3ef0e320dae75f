//! The editor's panels: the prompt bar, the model picker with its progress, the meters, and the
//! parameters in their groups.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use egui::{Color32, ProgressBar, RichText};
use nice_plug::prelude::{Param, ParamPtr, ParamSetter, Params};
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::widgets::generic_ui::ParamWidget;

use crate::params::{LatentChoirParams, presets};
use crate::playback::score_loader::ScoreLoader;
use crate::playback::soundfont_loader::FontLoader;
use crate::plugin::listener::ListenState;
use crate::project::export::ExportKind;
use crate::worker::link::{LinkPhase, LinkStatus};

use super::meters::Reading;
use super::models::ModelScan;
use crate::activation::direction::{DirectionChoice, SHIPPED_NAMES};
use crate::params::{SessionSettings, TextSource};

pub const ERROR_COLOR: Color32 = Color32::from_rgb(255, 110, 100);

/// What the user asked for in the prompt bar this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Generate,
    Stop,
    Reset,
    Replay,
}

/// Prompt, seed, chat/raw, who writes the text, and the transport buttons.
pub fn prompt_bar(
    ui: &mut egui::Ui,
    request: &mut SessionSettings,
    link: &LinkStatus,
    focus: bool,
) -> Option<Action> {
    let mut action = None;
    ui.horizontal(|ui| {
        ui.label("Prompt");
        let buttons_width = 330.0;
        let edit = egui::TextEdit::singleline(&mut request.prompt)
            .hint_text("What should the model write about?")
            .desired_width((ui.available_width() - buttons_width).max(120.0));
        let response = ui.add(edit);
        if focus {
            response.request_focus();
        }
        if response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            action = Some(Action::Generate);
        }
        if ui
            .button(RichText::new("Generate").strong())
            .on_hover_text("Run the prompt from the start (Enter in the prompt box)")
            .clicked()
        {
            action = Some(Action::Generate);
        }
        if ui
            .button("Stop")
            .on_hover_text("Stop the model and release the notes")
            .clicked()
        {
            action = Some(Action::Stop);
        }
        if ui
            .button("Reset")
            .on_hover_text("Stop; the next start runs the prompt from the beginning")
            .clicked()
        {
            action = Some(Action::Reset);
        }
        if ui
            .button("Replay")
            .on_hover_text("The last run again, same prompt and seed")
            .clicked()
        {
            action = Some(Action::Replay);
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Seed");
        ui.add(egui::DragValue::new(&mut request.seed).speed(1.0));
        ui.separator();
        ui.radio_value(&mut request.raw, false, "Chat")
            .on_hover_text("The model answers the prompt through its chat template");
        ui.radio_value(&mut request.raw, true, "Continue text")
            .on_hover_text("The model continues the prompt as raw text");
        ui.separator();
        text_source(ui, &mut request.text_source, link);
    });
    action
}

/// The concept direction tension follows: none, a shipped set, or a file from
/// `latent-choir fit-direction`. Applies from the next run, like the model and seed.
pub fn direction_picker(ui: &mut egui::Ui, request: &mut SessionSettings) {
    {
        ui.label("Direction").on_hover_text(
            "What the Tension voice and Dissonance follow: how far each token's hidden state \
             points from one set of prompts toward another (fitted for the model on first use)",
        );
        let choice = request.direction_choice();
        egui::ComboBox::from_id_salt("direction")
            .selected_text(match &choice {
                DirectionChoice::File(_) => "file".to_owned(),
                other => other.text(),
            })
            .show_ui(ui, |ui| {
                for name in std::iter::once("none").chain(SHIPPED_NAMES) {
                    let selected = choice.text() == name;
                    if ui.selectable_label(selected, name).clicked() {
                        request.direction = name.to_owned();
                    }
                }
            });
        ui.add(
            egui::TextEdit::singleline(&mut request.direction)
                .hint_text("or a direction file")
                .desired_width(120.0),
        );
    }
}

/// The model picker: what discovery found (default first) and a path field.
pub fn model_picker(
    ui: &mut egui::Ui,
    request: &mut SessionSettings,
    models: &ModelScan,
    rescan: &mut bool,
) {
    let found = models.found();
    ui.horizontal(|ui| {
        ui.label("Model");
        let selected = request.model_path();
        let name = |path: &std::path::Path| {
            path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            )
        };
        let shown = selected
            .as_deref()
            .map_or_else(|| "(none found)".to_owned(), name);
        egui::ComboBox::from_id_salt("model")
            .selected_text(shown)
            .width(260.0)
            .show_ui(ui, |ui| {
                for (i, model) in found.iter().enumerate() {
                    let label = format!(
                        "{}{} · {} · {} layers · {} · {:.0} MB",
                        if i == 0 { "★ " } else { "" },
                        name(&model.path),
                        model.architecture,
                        model.n_layers,
                        model.dtype,
                        model.size as f64 / 1e6
                    );
                    let is_selected = selected.as_deref() == Some(model.path.as_path());
                    if ui.selectable_label(is_selected, label).clicked() {
                        request.model = model.path.display().to_string();
                    }
                }
                if models.scanning() {
                    ui.label("Looking for models…");
                } else if found.is_empty() {
                    ui.label("No models found; type a path");
                }
            });
        ui.label("Path");
        ui.add(
            egui::TextEdit::singleline(&mut request.model)
                .hint_text("default model")
                .desired_width((ui.available_width() - 390.0).max(80.0)),
        );
        direction_picker(ui, request);
        if ui
            .button("Rescan")
            .on_hover_text("Look for models again")
            .clicked()
        {
            *rescan = true;
        }
    });
}

/// Who writes the text: the local model, or an OpenAI-compatible server the local model reads
/// (llama.cpp, vLLM, LM Studio, Ollama, `latent-choir serve`). Applies from the next run; the
/// server's state shows beside it.
fn text_source(ui: &mut egui::Ui, source: &mut TextSource, link: &LinkStatus) {
    ui.label("Text from").on_hover_text(
        "A server can write the text one token at a time at the loudness temperature; \
         the local model reads it, and its states are what you hear",
    );
    egui::ComboBox::from_id_salt("text_source")
        .selected_text(if source.remote {
            "a server"
        } else {
            "the local model"
        })
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut source.remote, false, "the local model");
            ui.selectable_value(&mut source.remote, true, "a server (OpenAI API)");
        });
    if !source.remote {
        return;
    }
    ui.add(
        egui::TextEdit::singleline(&mut source.url)
            .hint_text("http://127.0.0.1:8080/v1")
            .desired_width(220.0),
    );
    ui.label("Model");
    ui.add(
        egui::TextEdit::singleline(&mut source.model)
            .hint_text("first listed")
            .desired_width(120.0),
    );
    ui.label("Key from $").on_hover_text(
        "The environment variable holding the API key (empty: no key). The key itself is \
         never saved in the project or the run",
    );
    ui.add(
        egui::TextEdit::singleline(&mut source.key_variable)
            .hint_text("none")
            .desired_width(110.0),
    );
    ui.checkbox(&mut source.fallback, "Local model on failure");
    if let Some(remote) = link.remote.lock().ok().and_then(|r| r.clone()) {
        ui.weak(format!(
            "{} · {} pieces{}",
            remote.model,
            remote.pieces.len(),
            if remote.server_chose {
                " · the server chooses (no alternatives sent)"
            } else {
                ""
            }
        ));
    }
    if let Some(trouble) = link.remote_trouble() {
        ui.colored_label(ERROR_COLOR, trouble);
    }
}

/// Load and map-fitting progress, the worker's latest word, and any error in plain words.
pub fn model_status(ui: &mut egui::Ui, link: &LinkStatus, problem: Option<&str>) {
    let message = link.message();
    match link.phase() {
        LinkPhase::Loading => {
            ui.add(
                ProgressBar::new(0.0)
                    .animate(true)
                    .text(message)
                    .desired_height(16.0),
            );
        }
        LinkPhase::Fitting => {
            let done = link.fit_done.load(Ordering::Relaxed);
            let total = link.fit_total.load(Ordering::Relaxed).max(1);
            let fraction = done as f32 / total as f32;
            ui.add(
                ProgressBar::new(fraction)
                    .text(format!(
                        "Fitting the activation map (first time for this model): {done} of {total} lines"
                    ))
                    .desired_height(16.0),
            );
        }
        LinkPhase::Idle => {
            ui.weak("No model loaded yet: press Generate to load it and start.");
        }
        LinkPhase::Ready | LinkPhase::Failed => {
            ui.label(message);
        }
    }
    let error = link.error();
    for problem in problem
        .into_iter()
        .chain((!error.is_empty()).then_some(error.as_str()))
    {
        ui.colored_label(ERROR_COLOR, problem);
    }
}

/// Listen: what the listener is doing, the key it heard, and the last line the model read.
pub fn listen_status(ui: &mut egui::Ui, enabled: bool, heard: &ListenState, link: &LinkStatus) {
    if !enabled && heard.lines.load(Ordering::Relaxed) == 0 {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.strong(if enabled { "Listening" } else { "Listen off" });
        let status = heard.status();
        if !status.is_empty() {
            ui.label(status);
        }
        if let Some(key) = heard.key_name() {
            ui.label(format!("· key heard: {key}"));
        }
    });
    match link.last_heard() {
        Some(line) => {
            ui.weak(format!(
                "Read before token {}: {}",
                line.before_token,
                line.text.trim()
            ));
        }
        None => {
            let line = heard.line();
            if !line.is_empty() {
                ui.weak(line);
            }
        }
    }
}

/// The run's files: a path field, "Export MIDI" and "Export run", and the last export's
/// outcome; the saved run's state (replaying, or why a saved run could not be read) below.
pub fn export_row(
    ui: &mut egui::Ui,
    path: &mut String,
    status: &str,
    saved: &str,
) -> Option<ExportKind> {
    let mut kind = None;
    ui.horizontal(|ui| {
        ui.label("Export to");
        ui.add(
            egui::TextEdit::singleline(path)
                .hint_text("/path/to/piece (gets .mid or .lcrun)")
                .desired_width((ui.available_width() - 400.0).max(120.0)),
        );
        if ui
            .button("Export MIDI")
            .on_hover_text("The run as a MIDI file, as `latent-choir replay` writes it")
            .clicked()
        {
            kind = Some(ExportKind::Midi);
        }
        if ui
            .button("Export run")
            .on_hover_text("The run file: tokens, coordinates and settings, for `latent-choir replay` and NumPy")
            .clicked()
        {
            kind = Some(ExportKind::Run);
        }
        if status.starts_with("Export failed") {
            ui.colored_label(ERROR_COLOR, status);
        } else {
            ui.label(status);
        }
    });
    if saved.contains("could not be read") {
        ui.colored_label(ERROR_COLOR, saved);
    } else if !saved.is_empty() {
        ui.label(saved);
    }
    kind
}

pub fn meters(ui: &mut egui::Ui, reading: &Reading, frame_ms: (f64, f64), status_line: &str) {
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("{:.1} tokens/s", reading.tokens_per_second));
        ui.separator();
        ui.label(format!("lookahead {}", reading.lookahead));
        ui.separator();
        let warn = |ui: &mut egui::Ui, text: String, bad: bool| {
            if bad {
                ui.colored_label(ERROR_COLOR, text);
            } else {
                ui.label(text);
            }
        };
        warn(
            ui,
            format!("underruns {}", reading.underruns),
            reading.underruns > 0,
        );
        ui.separator();
        warn(
            ui,
            format!(
                "dropped frames {} (queue) · {} (display)",
                reading.dropped_frames, reading.dropped_records
            ),
            reading.dropped_frames + reading.dropped_records > 0,
        );
        ui.separator();
        ui.label(format!(
            "editor frame {:.2} ms (worst {:.2})",
            frame_ms.0, frame_ms.1
        ));
    });
    ui.weak(status_line);
}

/// One parameter's row: name, slider, range in its own units.
struct ParamRow;

impl ParamWidget for ParamRow {
    fn add_widget<P: Param>(&self, ui: &mut egui::Ui, param: &P, setter: &ParamSetter) {
        ui.label(param.name());
        ui.add(ParamSlider::for_param(param, setter).with_width(130.0));
        let low = param.normalized_value_to_string(0.0, true);
        let high = param.normalized_value_to_string(1.0, true);
        ui.weak(format!("{low} … {high}"));
        ui.end_row();
    }
}

fn group(ui: &mut egui::Ui, title: &str, open: bool, body: impl FnOnce(&mut egui::Ui)) {
    egui::CollapsingHeader::new(RichText::new(title).strong())
        .default_open(open)
        .show(ui, |ui| {
            egui::Grid::new(title)
                .num_columns(3)
                .spacing([8.0, 4.0])
                .striped(true)
                .show(ui, body);
        });
}

/// The SoundFont row's state: the path being typed and the loader that takes it.
pub struct Fonts<'a> {
    pub path: &'a mut String,
    pub loader: &'a Mutex<Option<FontLoader>>,
}

/// What the Model & Timing group shows below its parameters: the Model Weights composer's last
/// word and the loaded model's own key.
pub struct Weights<'a> {
    pub composer: &'a Mutex<Option<ScoreLoader>>,
    pub key: Option<String>,
}

fn weights_row(ui: &mut egui::Ui, weights: &Weights) {
    ui.label(RichText::new("Weights").strong());
    let message = weights
        .composer
        .lock()
        .ok()
        .as_deref()
        .and_then(Option::as_ref)
        .map(|c| c.status.message())
        .filter(|m| !m.is_empty())
        .unwrap_or_default();
    let key = weights
        .key
        .as_deref()
        .map_or_else(String::new, |k| format!("Model's key: {k}. "));
    let text = format!("{key}{message}");
    // Truncated, so a long status never widens the panel; the whole of it on hover.
    ui.add(egui::Label::new(RichText::new(&text).weak()).truncate())
        .on_hover_text(text);
    ui.end_row();
}

/// A path field with Load and Clear; the loader's last word (loaded, or why not) beside it.
fn soundfont_row(ui: &mut egui::Ui, params: &LatentChoirParams, fonts: &mut Fonts) {
    ui.label("SoundFont");
    let mut chosen = None;
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(fonts.path)
                .hint_text("path to a .sf2")
                .desired_width(130.0),
        );
        if ui.button("Load").clicked() {
            chosen = Some(fonts.path.trim().to_owned());
        }
        if ui.button("Clear").clicked() {
            fonts.path.clear();
            chosen = Some(String::new());
        }
    });
    let loader = fonts.loader.lock().ok();
    let message = loader
        .as_deref()
        .and_then(Option::as_ref)
        .map(|l| l.status.message())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "none loaded".to_owned());
    ui.weak(message);
    ui.end_row();
    let Some(path) = chosen else { return };
    params.set_soundfont(&path);
    if let Some(loader) = loader.as_deref().and_then(Option::as_ref) {
        loader.request((!path.is_empty()).then(|| PathBuf::from(path)));
    }
}

/// A menu of the factory presets: choosing one sets every parameter (the prompt, model and
/// recorded run stay), as loading it from the host's preset browser does.
fn preset_row(ui: &mut egui::Ui, setter: &ParamSetter) {
    ui.horizontal(|ui| {
        ui.label(RichText::new("Preset").strong());
        egui::ComboBox::from_id_salt("factory preset")
            .selected_text("Load a factory preset…")
            .width(200.0)
            .show_ui(ui, |ui| {
                for preset in presets::FACTORY {
                    let chosen = ui
                        .selectable_label(false, preset.name)
                        .on_hover_text(preset.description)
                        .clicked();
                    if chosen && let Ok(state) = preset.state() {
                        setter.raw_context.set_state(state);
                    }
                }
            });
    });
}

/// The group the SoundFont row joins.
const SOUND_GROUP: &str = "Sound";
/// The group the Weights row joins.
const MODEL_GROUP: &str = "Model & Timing";
/// Groups shown open in a fresh editor.
const OPEN_GROUPS: [&str; 2] = ["Model & Timing", "Temperature from Loudness"];

/// Every parameter in its group (as the host lists them), with its range.
pub fn parameters(
    ui: &mut egui::Ui,
    params: &LatentChoirParams,
    setter: &ParamSetter,
    mut fonts: Fonts,
    weights: Weights,
) {
    let mut groups: Vec<(String, Vec<ParamPtr>)> = Vec::new();
    for (_, ptr, group) in params.param_map() {
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, members)) => members.push(ptr),
            None => groups.push((group, vec![ptr])),
        }
    }
    egui::ScrollArea::vertical()
        .id_salt("parameters")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            preset_row(ui, setter);
            for (name, members) in &groups {
                group(ui, name, OPEN_GROUPS.contains(&name.as_str()), |ui| {
                    for ptr in members {
                        // SAFETY: the pointers point into `params`, borrowed for this call.
                        unsafe { ParamRow.add_widget_raw(ui, ptr, setter) };
                    }
                    if name == SOUND_GROUP {
                        soundfont_row(ui, params, &mut fonts);
                    }
                    if name == MODEL_GROUP {
                        weights_row(ui, &weights);
                    }
                });
            }
        });
}
