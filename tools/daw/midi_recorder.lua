ardour {
	["type"]    = "dsp",
	name        = "Latent Choir MIDI Recorder",
	category    = "Utility",
	license     = "MIT",
	author      = "Latent Choir tools",
	description = [[Passes audio and MIDI through unchanged and logs every MIDI event and every
process call into its shared memory, where tools/daw/ardour_check.lua reads them.]]
}

-- Shared memory layout (32-bit ints, 0-based):
--   [0] events written   [1] blocks written   [2] event capacity   [3] block capacity
--   events from HDR, EV ints each: block index, time in block, status, data1, data2
--   blocks after the events, BL ints each: engine sample at block start, transport sample,
--     rolling (0/1), n_samples, offset
-- The DSP side only ever appends; the counters are published after the data they cover.
local HDR, EV, BL = 8, 5, 5
local EV_CAP, BL_CAP = 200000, 100000

function dsp_ioconfig ()
	return { { midi_in = 1, midi_out = 1, audio_in = -1, audio_out = -1 } }
end

function dsp_init (rate)
	local shm = self:shmem ()
	shm:allocate (HDR + EV_CAP * EV + BL_CAP * BL)
	shm:clear ()
	shm:atomic_set_int (2, EV_CAP)
	shm:atomic_set_int (3, BL_CAP)
	engine_sample = 0
end

function dsp_configure (ins, outs)
	n_out = outs
end

function dsp_runmap (bufs, in_map, out_map, n_samples, offset)
	ARDOUR.DSP.process_map (bufs, n_out, in_map, out_map, n_samples, offset)

	local shm = self:shmem ()
	local mem = shm:to_int (0):array () -- 1-based: mem[k + 1] is int k
	local nev = shm:atomic_get_int (0)
	local nbl = shm:atomic_get_int (1)

	if nbl < BL_CAP then
		local b = HDR + EV_CAP * EV + nbl * BL
		mem[b + 1] = engine_sample
		mem[b + 2] = Session:transport_sample ()
		mem[b + 3] = Session:transport_rolling () and 1 or 0
		mem[b + 4] = n_samples
		mem[b + 5] = offset
	end

	local ib = in_map:get (ARDOUR.DataType ("midi"), 0)
	if ib ~= ARDOUR.ChanMapping.Invalid then
		for _, e in pairs (bufs:get_midi (ib):table ()) do
			if nev < EV_CAP then
				local d = e:buffer ():array ()
				local k = HDR + nev * EV
				mem[k + 1] = nbl
				mem[k + 2] = e:time ()
				mem[k + 3] = d[1]
				mem[k + 4] = e:size () > 1 and d[2] or 0
				mem[k + 5] = e:size () > 2 and d[3] or 0
				nev = nev + 1
			end
		end
	end

	shm:atomic_set_int (0, nev)
	shm:atomic_set_int (1, math.min (nbl + 1, BL_CAP))
	engine_sample = engine_sample + n_samples
end
