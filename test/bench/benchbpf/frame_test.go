package benchbpf

import (
	"encoding/binary"
	"net"
	"testing"
)

func TestParse(t *testing.T) {
	tmpl := Template{Dst: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Src: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Size: 60, Stream: 7}
	plain, err := tmpl.Frame()
	if err != nil {
		t.Fatal(err)
	}
	SetSeq(plain, 123456)
	tagged := append(append(append([]byte{}, plain[:12]...), 0x81, 0x00, 0x00, 0x64), plain[12:]...)
	rarp := append([]byte{}, plain...)
	binary.BigEndian.PutUint16(rarp[12:], 0x8035)
	badMagic := append([]byte{}, plain...)
	badMagic[14] ^= 0xff
	for _, c := range []struct {
		name   string
		frame  []byte
		kind   FrameKind
		stream uint8
		seq    uint32
	}{
		{"stream", plain, Stream, 7, 123456},
		{"tagged stream", tagged, Stream, 7, 123456},
		{"rarp", rarp, RARP, 0, 0},
		{"wrong magic", badMagic, NotOurs, 0, 0},
		{"cut short", plain[:20], NotOurs, 0, 0},
		{"runt", plain[:10], NotOurs, 0, 0},
	} {
		kind, stream, seq := Parse(c.frame)
		if kind != c.kind || stream != c.stream || seq != c.seq {
			t.Errorf("%s: Parse = %v %d %d, want %v %d %d", c.name, kind, stream, seq, c.kind, c.stream, c.seq)
		}
	}
}
