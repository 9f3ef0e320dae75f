-- Ardour session script for tools/daw/ardour_check.sh (run inside /usr/lib/ardour7/luasession).
--
-- Builds a session on the "None (Dummy)" backend with one MIDI track whose instrument is the
-- Latent Choir VST3, puts the "Latent Choir MIDI Recorder" Lua DSP (midi_recorder.lua) right
-- after it, turns Generate on and drives the transport through the requested scenario. The
-- recorder logs every process call and MIDI event into its shared memory; this script copies
-- that out as TSV files for summarize.py. Arguments are key=value pairs (see ardour_check.sh).

local o = {}
for _, a in ipairs (arg) do
	local k, v = a:match ("^([%w_]+)=(.*)$")
	if k then o[k] = v end
end

local OUT = assert (o.out, "out=DIR is required")
local RATE, BLOCK = tonumber (o.rate), tonumber (o.block)
local BPM, SECONDS = tonumber (o.bpm), tonumber (o.seconds)
local WAIT = tonumber (o.wait)                  -- longest wait for the first note-on, seconds
local TAIL = tonumber (o.tail)                  -- engine time after each stop, seconds
local STOP_AT = tonumber (o.stop_at)            -- nil unless --stop-at
local LOCATE_BACK = o.locate_back == "1"
local LISTEN = o.listen == "1"
local FEEL = o.feel == "1"
local LOOP_START, LOOP_END = tonumber (o.loop_start), tonumber (o.loop_end)
local SESSION_DIR, NAME = o.session, "ardour_check"
local TRS = ARDOUR.TransportRequestSource.TRS_UI

local function say (...) print ("[ardour] " .. string.format (...)) end

-- Must match midi_recorder.lua.
local HDR, EV, BL, EV_CAP, BL_CAP = 8, 5, 5, 200000, 100000

---------------------------------------------------------------------------------------------
-- Engine and session

ARDOUR.config ():set_hide_dummy_backend (false)
ARDOUR.config ():set_plugin_path_vst3 (o.vst3_path) -- only our private copy of the bundle
local backend = AudioEngine:set_backend ("None (Dummy)", "", "")
assert (backend, "no None (Dummy) backend")
backend:set_device_name ("Silence")
backend:set_buffer_size (BLOCK)

assert (create_session (SESSION_DIR, NAME, RATE), "could not create the session")

if LOOP_START then
	-- Ardour 7.3's Lua bindings cannot make a loop range, so add a range marker, save, turn it
	-- into the session's loop range in the session file and load the session again.
	Session:locations ():add_range (Temporal.timepos_t (math.floor (LOOP_START * RATE)),
	                                Temporal.timepos_t (math.floor (LOOP_END * RATE)))
	Session:save_state ("", false, false, false, false, false)
	close_session ()
	local file = SESSION_DIR .. "/" .. NAME .. ".ardour"
	local f = assert (io.open (file)); local xml = f:read ("a"); f:close ()
	local n
	xml, n = xml:gsub ('(<Location [^>]*flags=")IsRangeMarker(")', '%1IsAutoLoop,IsHidden%2', 1)
	assert (n == 1, "no range marker in the session file")
	f = assert (io.open (file, "w")); f:write (xml); f:close ()
	assert (load_session (SESSION_DIR, NAME), "could not reload the session")
	local loop = Session:locations ():auto_loop_location ()
	assert (loop, "the session has no loop range")
	say ("loop range %d..%d samples", loop:start ():samples (), loop:_end ():samples ())
end

say ("engine: %s, device %s, %d Hz, %d-sample blocks", AudioEngine:current_backend_name (),
     backend:device_name (), Session:nominal_sample_rate (), backend:buffer_size ())
assert (backend:buffer_size () == BLOCK, "the backend did not take the block size")

-- Tempo: one constant tempo from the start.
local tm = Temporal.TempoMap.fetch_writable ()
tm:set_tempo (Temporal.Tempo (BPM, BPM, 4), Temporal.timepos_t (0))
Temporal.TempoMap.update (tm)
tm = nil
tm = Temporal.TempoMap.read ()
say ("tempo: %.4f BPM", tm:quarters_per_minute_at (Temporal.timepos_t (0)))
tm = nil

---------------------------------------------------------------------------------------------
-- The track: Latent Choir as the instrument, the recorder right after it

local pinfo
for p in ARDOUR.LuaAPI.list_plugins ():iter () do
	if p.type == ARDOUR.PluginType.VST3 and p.name == o.plugin_name then pinfo = p end
end
if not pinfo then
	for p in ARDOUR.LuaAPI.list_plugins ():iter () do
		if p.type == ARDOUR.PluginType.VST3 then say ("VST3 found: %s", p.name) end
	end
	error ("Ardour has no VST3 plugin named '" .. o.plugin_name .. "' (was the bundle scanned?)")
end

local tracks = Session:new_midi_track (
	ARDOUR.ChanCount (ARDOUR.DataType ("midi"), 1), ARDOUR.ChanCount (ARDOUR.DataType ("audio"), 2),
	false, pinfo, nil, nil, 1, "Latent Choir", ARDOUR.PresentationInfo.max_order,
	ARDOUR.TrackMode.Normal, false, false)
assert (tracks:size () == 1, "could not create the MIDI track")
local track = tracks:front ()
local inst = track:nth_plugin (0)
assert (not inst:isnil (), "the track has no instrument")
local plugin = inst:to_insert ():plugin (0)

local rec = ARDOUR.LuaAPI.new_luaproc (Session, "Latent Choir MIDI Recorder")
assert (not rec:isnil (), "no 'Latent Choir MIDI Recorder' Lua DSP (midi_recorder.lua) found")
assert (track:add_processor_by_index (rec, 1, nil, true) == 0, "could not add the recorder")
local chain = {}
for i = 0, 32 do
	local p = track:nth_processor (i)
	if p:isnil () then break end
	if p:display_to_user () then chain[#chain + 1] = p:display_name () end
end
say ("track: %s", table.concat (chain, " -> "))
local shm = rec:to_insert ():plugin (0):to_luaproc ():shmem ()
local mem = shm:to_int (0):array () -- mem[k + 1] is int k

---------------------------------------------------------------------------------------------
-- Parameters: dump them all (as Ardour shows them), then turn Generate on

local params = {}
for j = 0, plugin:parameter_count () - 1 do
	local _, pd = plugin:get_parameter_descriptor (j, ARDOUR.ParameterDescriptor ())
	params[plugin:parameter_label (j)] = j
	params[#params + 1] = { j, plugin:parameter_label (j), pd[2] }
end
-- Ardour 7.3's Lua cannot ask for a value's display text (print_parameter is not bound), so
-- show the scale point (a named value: what a dropdown in Ardour's generic GUI lists) if any.
local function param_line (j, label, pd)
	local value = ARDOUR.LuaAPI.get_processor_param (inst, j, true)
	local names, n = {}, 0
	for name, v in pairs (ARDOUR.LuaAPI.desc_scale_points (pd)) do
		n = n + 1
		if v == value then names[#names + 1] = name end
	end
	local kind = pd.toggled and "toggle" or pd.enumeration and "enum"
		or pd.integer_step and "integer" or "continuous"
	return string.format ("%d\t%s\t%s\t%g\t%g\t%g\t%d\t%s", j, label, kind, pd.lower, pd.upper,
		value, n, table.concat (names, "/"))
end

local generate = params["Generate"]
assert (generate, "the plugin has no 'Generate' parameter")
assert (ARDOUR.LuaAPI.set_processor_param (inst, generate, 1), "could not turn Generate on")
if not FEEL then
	-- Notes exactly on the grid and a held drone, so the grid and drone checks are exact.
	local humanise, bass = params["Humanise"], params["Bass"]
	assert (humanise and bass, "the plugin has no Humanise or Bass parameter")
	assert (ARDOUR.LuaAPI.set_processor_param (inst, humanise, 0), "could not set Humanise")
	assert (ARDOUR.LuaAPI.set_processor_param (inst, bass, 0), "could not set Bass")
	say ("Humanise 0, Bass Held Drone")
end
if LISTEN then
	local listen, every = params["Listen"], params["Listen Every"]
	assert (listen and every, "the plugin has no Listen parameters")
	assert (ARDOUR.LuaAPI.set_processor_param (inst, listen, 1), "could not turn Listen on")
	assert (ARDOUR.LuaAPI.set_processor_param (inst, every, 1), "could not set Listen Every")
	say ("Listen on, every %g bar(s)", ARDOUR.LuaAPI.get_processor_param (inst, every, true))
end
sleep (0.5)
local pf = assert (io.open (OUT .. "/params.tsv", "w"))
pf:write ("index\tname\tkind\tlower\tupper\tvalue\tscale_points\tvalue_name\n")
for _, p in ipairs (params) do pf:write (param_line (p[1], p[2], p[3]) .. "\n") end
pf:close ()
say ("Generate on (parameter %d = %g)", generate, ARDOUR.LuaAPI.get_processor_param (inst, generate, true))

---------------------------------------------------------------------------------------------
-- Transport scenario. Phases are marked by the recorder's block count when they begin.

local phases = {}
local function mark (name)
	phases[#phases + 1] = { name, shm:atomic_get_int (1), Session:transport_sample () }
end
local scanned, first_note = 0, nil -- first note-on while rolling: transport sample
local function scan ()
	local nev = shm:atomic_get_int (0)
	for k = scanned, nev - 1 do
		local b = HDR + k * EV
		local bl = HDR + EV_CAP * EV + mem[b + 1] * BL
		if not first_note and (mem[b + 3] & 0xF0) == 0x90 and mem[b + 5] > 0 and mem[bl + 3] == 1 then
			first_note = mem[bl + 2] + mem[b + 2] - mem[bl + 5]
			say ("first note-on at %.3f s", first_note / RATE)
		end
	end
	scanned = nev
end
local function pos () return Session:transport_sample () end
local function wait_until (cond, timeout)
	local t = 0
	while not cond () do
		sleep (0.02); t = t + 0.02; scan ()
		if t > timeout then return false end
	end
	return true
end
local function stop_and_idle (name)
	mark (name)
	Session:request_stop (false, false, TRS)
	wait_until (function () return not Session:transport_rolling () end, 5)
	say ("%s at %.3f s; engine runs %.1f s more", name, pos () / RATE, TAIL)
	sleep (TAIL)
end

mark ("main")
Session:request_roll (TRS)
if not wait_until (function () return first_note end, WAIT) then
	say ("no note-on within %d s of rolling: model or PCA map not ready?", WAIT)
end
local main_end
if STOP_AT then
	main_end = math.floor (STOP_AT * RATE)
	if first_note and first_note > main_end then say ("warning: --stop-at is before the first note") end
else
	main_end = (first_note or pos ()) + math.floor (SECONDS * RATE)
end
wait_until (function () return pos () >= main_end end, main_end / RATE + 60)
main_end = pos ()

if LOCATE_BACK then
	-- A seek while rolling (the Home key during playback), then the same span again.
	-- (summarize.py starts the replay at the first process call after the jump.)
	mark ("replay")
	Session:request_locate (0, false, ARDOUR.LocateTransportDisposition.MustRoll, TRS)
	wait_until (function () return pos () < main_end end, 5)
	say ("located back to 0 while rolling; playing to %.3f s again", main_end / RATE)
	wait_until (function () return pos () >= main_end end, main_end / RATE + 60)
end
stop_and_idle ("stopped")

if LOOP_START then
	Session:request_locate (math.floor (LOOP_START * RATE), false,
		ARDOUR.LocateTransportDisposition.MustStop, TRS)
	sleep (0.5)
	mark ("loop")
	Session:request_play_loop (true, true)
	-- Three times round: wait for the third wrap back to the loop start, plus a little.
	local wraps, last = 0, nil
	wait_until (function ()
		local p = pos ()
		if last and p < last then wraps = wraps + 1 end
		last = p
		return wraps >= 3
	end, 3 * (LOOP_END - LOOP_START) + 30)
	sleep (0.1)
	Session:request_play_loop (false, false)
	stop_and_idle ("loop-stopped")
end

---------------------------------------------------------------------------------------------
-- Copy the recorder's log out

local nev, nbl = shm:atomic_get_int (0), shm:atomic_get_int (1)
local f = assert (io.open (OUT .. "/blocks.tsv", "w"))
f:write ("block\tengine_sample\ttransport_sample\trolling\tn_samples\toffset\n")
for k = 0, nbl - 1 do
	local b = HDR + EV_CAP * EV + k * BL
	f:write (string.format ("%d\t%d\t%d\t%d\t%d\t%d\n", k, mem[b + 1], mem[b + 2], mem[b + 3],
		mem[b + 4], mem[b + 5]))
end
f:close ()
f = assert (io.open (OUT .. "/events.tsv", "w"))
f:write ("block\ttime\tstatus\tdata1\tdata2\n")
for k = 0, nev - 1 do
	local b = HDR + k * EV
	f:write (string.format ("%d\t%d\t%d\t%d\t%d\n", mem[b + 1], mem[b + 2], mem[b + 3], mem[b + 4],
		mem[b + 5]))
end
f:close ()
f = assert (io.open (OUT .. "/phases.tsv", "w"))
f:write ("phase\tfirst_block\ttransport_sample\n")
for _, p in ipairs (phases) do f:write (string.format ("%s\t%d\t%d\n", p[1], p[2], p[3])) end
f:close ()
if nev >= EV_CAP or nbl >= BL_CAP then say ("warning: the recorder's log is full") end
say ("recorded %d MIDI events in %d process calls", nev, nbl)

Session:close ()
