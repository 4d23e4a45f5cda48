// Command tlogcheck checks a NexaPod transparency log directory with third-party code,
// so that our Python implementation is not the only judge of its own output.
//
// golang.org/x/mod/sumdb/note opens the signed checkpoint (C2SP signed-note was
// specified from it), and golang.org/x/mod/sumdb/tlog (RFC 6962 hashing, tiles of
// height 8, proofs) rebuilds the tree from the entry bundles, compares every tile,
// authenticates tiles against the checkpoint and checks every proof we generated.
//
// Directory layout, as the Python tests write it:
//
//	vkey          verifier key: <name>+<hex key ID>+<base64(0x01 || public key)>
//	checkpoint    C2SP tlog-checkpoint in a signed note
//	tile/...      C2SP tlog-tiles: tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>]
//	proofs.json   {"inclusion": [{"leaf_index", "tree_size", "proof"}],
//	               "consistency": [{"old_size", "new_size", "proof"}]}, hashes in base64
//
// sumdb/tlog names tiles tile/<H>/<L>/<N> and entry tiles tile/<H>/data/<N>; C2SP
// fixes H at 8 and drops it, and calls data "entries". Paths are mapped, never parsed
// by hand: each file name is checked with tlog.ParseTilePath.
//
// Prints "OK ..." and exits 0, or "FAIL: <reason>" and exits 1; bad usage exits 2.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	dataLevel  = -1
)

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

type inclusionProof struct {
	LeafIndex int64       `json:"leaf_index"`
	TreeSize  int64       `json:"tree_size"`
	Proof     []tlog.Hash `json:"proof"`
}

type consistencyProof struct {
	OldSize int64       `json:"old_size"`
	NewSize int64       `json:"new_size"`
	Proof   []tlog.Hash `json:"proof"`
}

type proofFile struct {
	Inclusion   []inclusionProof   `json:"inclusion"`
	Consistency []consistencyProof `json:"consistency"`
}

func main() {
	dir := flag.String("dir", "", "log directory")
	origin := flag.String("origin", "", "expected checkpoint origin (optional)")
	flag.Parse()
	if *dir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck -dir DIR [-origin ORIGIN]")
		os.Exit(2)
	}
	summary, err := check(*dir, *origin)
	if err != nil {
		fmt.Printf("FAIL: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("OK %s\n", summary)
}

func check(dir, wantOrigin string) (string, error) {
	cp, err := openCheckpoint(dir, wantOrigin)
	if err != nil {
		return "", err
	}
	files, err := checkTilePaths(dir)
	if err != nil {
		return "", err
	}
	stored, leaves, err := rebuild(dir, cp.size)
	if err != nil {
		return "", err
	}
	root, err := tlog.TreeHash(cp.size, stored)
	if err != nil {
		return "", err
	}
	if root != cp.root {
		return "", fmt.Errorf("the entry bundles give root %v, the checkpoint says %v", root, cp.root)
	}
	tiles, err := checkTiles(dir, cp.size, stored)
	if err != nil {
		return "", err
	}
	authenticated := tlog.TileHashReader(tlog.Tree{N: cp.size, Hash: cp.root}, dirTiles{dir})
	proofs, err := readProofs(dir)
	if err != nil {
		return "", err
	}
	if err := checkInclusion(proofs.Inclusion, cp.size, stored, authenticated, leaves); err != nil {
		return "", err
	}
	if err := checkConsistency(proofs.Consistency, cp.size, stored, authenticated); err != nil {
		return "", err
	}
	return fmt.Sprintf("origin=%s size=%d files=%d tiles=%d inclusion=%d consistency=%d",
		cp.origin, cp.size, files, tiles, len(proofs.Inclusion), len(proofs.Consistency)), nil
}

// openCheckpoint verifies the checkpoint signature with sumdb/note and parses the body.
func openCheckpoint(dir, wantOrigin string) (checkpoint, error) {
	var cp checkpoint
	vkey, err := os.ReadFile(filepath.Join(dir, "vkey"))
	if err != nil {
		return cp, err
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return cp, fmt.Errorf("verifier key: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		return cp, err
	}
	opened, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return cp, fmt.Errorf("checkpoint signature: %v", err)
	}
	cp, err = parseCheckpoint(opened.Text)
	if err != nil {
		return cp, err
	}
	if wantOrigin != "" && cp.origin != wantOrigin {
		return cp, fmt.Errorf("checkpoint origin %q, want %q", cp.origin, wantOrigin)
	}
	return cp, nil
}

// parseCheckpoint reads a C2SP tlog-checkpoint body: origin, size, base64 root, extensions.
func parseCheckpoint(text string) (checkpoint, error) {
	var cp checkpoint
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return cp, errors.New("checkpoint body has fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return cp, fmt.Errorf("checkpoint size %q is not canonical", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return cp, fmt.Errorf("checkpoint root hash: %v", err)
	}
	if lines[0] == "" {
		return cp, errors.New("checkpoint origin is empty")
	}
	for _, ext := range lines[3 : len(lines)-1] {
		if ext == "" {
			return cp, errors.New("checkpoint has an empty extension line")
		}
	}
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

// ourPath maps a sumdb tile to its C2SP path.
func ourPath(t tlog.Tile) string {
	rest := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", tileHeight))
	if strings.HasPrefix(rest, "data/") {
		rest = "entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "tile/" + rest
}

// checkTilePaths parses every file name under tile/ with tlog.ParseTilePath.
func checkTilePaths(dir string) (int, error) {
	count := 0
	err := filepath.WalkDir(filepath.Join(dir, "tile"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		rest := strings.TrimPrefix(rel, "tile/")
		if strings.HasPrefix(rest, "entries/") {
			rest = "data/" + strings.TrimPrefix(rest, "entries/")
		}
		t, err := tlog.ParseTilePath(fmt.Sprintf("tile/%d/%s", tileHeight, rest))
		if err != nil {
			return fmt.Errorf("tile file %s: %v", rel, err)
		}
		if ourPath(t) != rel {
			return fmt.Errorf("tile file %s maps back to %s", rel, ourPath(t))
		}
		count++
		return nil
	})
	return count, err
}

// readTile reads a tile, falling back to the full tile for a missing partial one
// (tlog-tiles lets a log replace a partial tile by its full successor).
func readTile(dir string, t tlog.Tile) ([]byte, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(ourPath(t))))
	if errors.Is(err, fs.ErrNotExist) && t.W < tileWidth {
		full := t
		full.W = tileWidth
		data, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(ourPath(full))))
		return data, true, err
	}
	return data, false, err
}

// dirTiles is a tlog.TileReader over the directory; tlog authenticates what it returns.
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return tileHeight }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, _, err := readTile(d.dir, t)
		if err != nil {
			return nil, err
		}
		want := t.W * tlog.HashSize
		if len(data) < want {
			return nil, fmt.Errorf("tile %s has %d bytes, want %d", ourPath(t), len(data), want)
		}
		out[i] = data[:want]
	}
	return out, nil
}

func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// memHashes is every stored hash of the rebuilt tree, in tlog's storage order.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("hash %d is not stored", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

func minInt64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// rebuild hashes every entry of every bundle into a fresh tree with tlog.
func rebuild(dir string, size int64) (memHashes, []tlog.Hash, error) {
	var stored memHashes
	leaves := make([]tlog.Hash, 0, size)
	for n := int64(0); n*tileWidth < size; n++ {
		width := minInt64(tileWidth, size-n*tileWidth)
		entries, err := readBundle(dir, tlog.Tile{H: tileHeight, L: dataLevel, N: n, W: int(width)})
		if err != nil {
			return nil, nil, err
		}
		for i, entry := range entries {
			leaf := tlog.RecordHash(entry)
			hashes, err := tlog.StoredHashesForRecordHash(n*tileWidth+int64(i), leaf, stored)
			if err != nil {
				return nil, nil, err
			}
			stored = append(stored, hashes...)
			leaves = append(leaves, leaf)
		}
	}
	return stored, leaves, nil
}

// readBundle decodes big-endian uint16 length-prefixed entries.
func readBundle(dir string, t tlog.Tile) ([][]byte, error) {
	data, fromFull, err := readTile(dir, t)
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("bundle %s ends inside a length", ourPath(t))
		}
		size := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+size {
			return nil, fmt.Errorf("bundle %s ends inside an entry", ourPath(t))
		}
		entries = append(entries, data[2:2+size])
		data = data[2+size:]
	}
	want := t.W
	if fromFull {
		want = tileWidth
	}
	if len(entries) != want {
		return nil, fmt.Errorf("bundle %s has %d entries, want %d", ourPath(t), len(entries), want)
	}
	return entries[:t.W], nil
}

// checkTiles compares every tile of the tree with tlog.ReadTileData of the rebuilt tree.
func checkTiles(dir string, size int64, stored memHashes) (int, error) {
	count := 0
	for level := 0; level*tileHeight < 63 && size>>(uint(level)*tileHeight) > 0; level++ {
		hashes := size >> (uint(level) * tileHeight)
		for n := int64(0); n*tileWidth < hashes; n++ {
			width := minInt64(tileWidth, hashes-n*tileWidth)
			t := tlog.Tile{H: tileHeight, L: level, N: n, W: int(width)}
			want, err := tlog.ReadTileData(t, stored)
			if err != nil {
				return count, err
			}
			got, _, err := readTile(dir, t)
			if err != nil {
				return count, err
			}
			if !bytes.Equal(got, want) {
				return count, fmt.Errorf("tile %s does not match the entries", ourPath(t))
			}
			count++
		}
	}
	return count, nil
}

func readProofs(dir string) (proofFile, error) {
	var proofs proofFile
	data, err := os.ReadFile(filepath.Join(dir, "proofs.json"))
	if err != nil {
		return proofs, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&proofs); err != nil {
		return proofs, fmt.Errorf("proofs.json: %v", err)
	}
	return proofs, nil
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkInclusion(proofs []inclusionProof, size int64, stored memHashes, tiles tlog.HashReader, leaves []tlog.Hash) error {
	for _, p := range proofs {
		if p.TreeSize < 1 || p.TreeSize > size || p.LeafIndex < 0 || p.LeafIndex >= p.TreeSize {
			return fmt.Errorf("inclusion proof of %d in %d is out of range", p.LeafIndex, p.TreeSize)
		}
		root, err := tlog.TreeHash(p.TreeSize, stored)
		if err != nil {
			return err
		}
		if err := tlog.CheckRecord(p.Proof, p.TreeSize, root, p.LeafIndex, leaves[p.LeafIndex]); err != nil {
			return fmt.Errorf("inclusion proof of %d in %d: %v", p.LeafIndex, p.TreeSize, err)
		}
		fromTiles, err := tiles.ReadHashes([]int64{tlog.StoredHashIndex(0, p.LeafIndex)})
		if err != nil {
			return fmt.Errorf("reading leaf %d from the tiles: %v", p.LeafIndex, err)
		}
		if fromTiles[0] != leaves[p.LeafIndex] {
			return fmt.Errorf("leaf %d in the tiles is not the entry's hash", p.LeafIndex)
		}
		goProof, err := tlog.ProveRecord(p.TreeSize, p.LeafIndex, tiles)
		if err != nil {
			return fmt.Errorf("tlog could not prove %d in %d from the tiles: %v", p.LeafIndex, p.TreeSize, err)
		}
		if !sameHashes(goProof, p.Proof) {
			return fmt.Errorf("inclusion proof of %d in %d differs from tlog's", p.LeafIndex, p.TreeSize)
		}
	}
	return nil
}

func checkConsistency(proofs []consistencyProof, size int64, stored memHashes, tiles tlog.HashReader) error {
	for _, p := range proofs {
		if p.OldSize < 1 || p.OldSize > p.NewSize || p.NewSize > size {
			return fmt.Errorf("consistency proof %d -> %d is out of range", p.OldSize, p.NewSize)
		}
		oldRoot, err := tlog.TreeHash(p.OldSize, stored)
		if err != nil {
			return err
		}
		newRoot, err := tlog.TreeHash(p.NewSize, stored)
		if err != nil {
			return err
		}
		if err := tlog.CheckTree(p.Proof, p.NewSize, newRoot, p.OldSize, oldRoot); err != nil {
			return fmt.Errorf("consistency proof %d -> %d: %v", p.OldSize, p.NewSize, err)
		}
		goProof, err := tlog.ProveTree(p.NewSize, p.OldSize, tiles)
		if err != nil {
			return fmt.Errorf("tlog could not prove %d -> %d from the tiles: %v", p.OldSize, p.NewSize, err)
		}
		if !sameHashes(goProof, p.Proof) {
			return fmt.Errorf("consistency proof %d -> %d differs from tlog's", p.OldSize, p.NewSize)
		}
	}
	return nil
}
