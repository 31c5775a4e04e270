package benchbpf

import "encoding/binary"

// FrameKind is what Parse found.
type FrameKind int

const (
	NotOurs FrameKind = iota
	Stream            // a stream frame: stream id and sequence number
	RARP              // an announcement
)

const (
	etherRARP  = 0x8035
	etherVLAN  = 0x8100
	etherQinQ  = 0x88a8
	streamBody = 9 // magic, stream id, sequence number
)

// SetSeq writes seq into a stream frame made by Template.Frame.
func SetSeq(frame []byte, seq uint32) {
	binary.BigEndian.PutUint32(frame[SeqOffset:], seq)
}

// Parse reads a frame as bench_rx does, for receivers that cannot run it
// (a tap's far end is a file descriptor; the end-to-end tests read with
// AF_PACKET): a stream frame or a RARP, untagged or behind one tag.
func Parse(frame []byte) (kind FrameKind, stream uint8, seq uint32) {
	if len(frame) < 14 {
		return NotOurs, 0, 0
	}
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	if (et == etherVLAN || et == etherQinQ) && len(frame) >= 18 {
		off += 4
		et = binary.BigEndian.Uint16(frame[off:])
	}
	body := frame[off+2:]
	switch {
	case et == etherRARP:
		return RARP, 0, 0
	case et == EtherType && len(body) >= streamBody && binary.BigEndian.Uint32(body) == Magic:
		return Stream, body[4], binary.BigEndian.Uint32(body[5:])
	}
	return NotOurs, 0, 0
}
