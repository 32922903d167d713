#!/usr/bin/env bash
# Every bad input of issue 12 against the built binary, one Markdown row each: what was given,
# the exit code, the first lines of the message. Works in a temporary folder; needs python3.
# Usage: scripts/bad-inputs.sh   (ADGAN=path/to/adgan to try another binary)
A="${ADGAN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/adgan}"
export OMP_NUM_THREADS=1
W=$(mktemp -d); cd $W
python3 - <<'PY'
import zlib,struct,os,random
def png(path,w,h,seed):
    random.seed(seed)
    raw=b''.join(b'\x00'+bytes(random.randrange(256) for _ in range(w)) for _ in range(h))
    def chunk(t,d): return struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d)&0xffffffff)
    open(path,'wb').write(b'\x89PNG\r\n\x1a\n'+chunk(b'IHDR',struct.pack('>IIBBBBB',w,h,8,0,0,0,0))+chunk(b'IDAT',zlib.compress(raw))+chunk(b'IEND',b''))
os.makedirs('imgs',exist_ok=True); os.makedirs('mixed',exist_ok=True)
for i in range(12): png(f'imgs/a{i:02d}.png',32,32,i)
open('imgs/zero.png','wb').close()
open('imgs/text.jpg','w').write('not an image')
open('imgs/._a00.png','wb').write(b'\x00\x05\x16\x07junk')
for i in range(6): png(f'mixed/m{i}.png',32 if i%2 else 48,32 if i%2 else 40,i)
os.makedirs('nonutf',exist_ok=True)
png(b'nonutf/caf\xe9.png'.decode('utf-8','surrogateescape'),32,32,99)
PY
row() { # description, command...
  local d="$1"; shift
  "$@" > out.txt 2> err.txt; local c=$?
  local m=$(grep -v "^\s*$" err.txt | grep -iE "error|warning|note|skip|refus|panick|cap" | head -2 | tr '\n' ' ' | cut -c1-230)
  [ -z "$m" ] && m=$(tail -1 err.txt | cut -c1-200)
  echo "| $d | $c | ${m//|/\\|} |"
}
$A train --dataset demo --normal-class disc --width 8 --latent-dim 16 --iterations 20 --out run --device cpu >/dev/null 2>&1
S="score --model run --dataset demo --normal-class disc --n-test 8 --device cpu"
cp run/checkpoint.safetensors ck.bak
row "score --out RUN/checkpoint.safetensors" $A $S --out run/checkpoint.safetensors
row "... with --force" $A $S --out run/checkpoint.safetensors --force
cmp -s ck.bak run/checkpoint.safetensors && echo "(checkpoint unchanged)"
row "score --out /dev/null --force" $A $S --out /dev/null --force
ls -l /dev/null | cut -c1-10
mkdir adir; row "score --out an existing folder" $A $S --out adir
ls -a adir | wc -l
echo x > exists.csv; row "score --out an existing file (no --force)" $A $S --out exists.csv
row "score --out -" $A $S --out -
row "score a folder with zero-byte PNG, text .jpg, ._ file" $A score --model run --images imgs --out s.csv --device cpu
echo "skipped list:"; cat s.csv.skipped.txt 2>/dev/null
row "... with --strict" $A score --model run --images imgs --out s2.csv --device cpu --strict
row "rank the same folder" $A rank --model run --images imgs --out rk --device cpu
row "train on that folder" $A train --dataset folder --data imgs --width 8 --latent-dim 16 --iterations 2 --out run2 --device cpu
row "experiment --classes 0-9 on demo (4 classes)" $A experiment one-vs-all --dataset demo --classes 0-9 --width 8 --iterations 2 --device cpu --out exp
ls exp 2>/dev/null | head -3
row "experiment default --n-test 5000 on demo" $A experiment one-vs-all --dataset demo --classes disc --width 8 --latent-dim 16 --iterations 2 --methods critic --device cpu --out exp2
row "train --width 100000" $A train --dataset demo --normal-class disc --width 100000 --out r3 --device cpu
row "train --latent-dim 100000000" $A train --dataset demo --normal-class disc --latent-dim 100000000 --out r3 --device cpu
mkdir -p big && cp run/* big/ 2>/dev/null; python3 - <<'PY'
import json; c=json.load(open('big/config.json')); c['model']['width']=1000000; json.dump(c,open('big/config.json','w'))
PY
row "score with config.json width 1000000" $A score --model big --dataset demo --normal-class disc --n-test 8 --out b.csv --device cpu
python3 - <<'PY'
import json; c=json.load(open('big/config.json')); c['model']['width']=2048; json.dump(c,open('big/config.json','w'))
PY
row "score with config.json width 2048" /usr/bin/time -f "maxrss %M KB" $A score --model big --dataset demo --normal-class disc --n-test 8 --out b.csv --device cpu
grep maxrss err.txt
row "score --n-seed 100000000" $A $S --out n.csv --n-seed 100000000
row "train --lr=-1" $A train --dataset demo --normal-class disc --width 8 --lr=-1 --out r4 --device cpu
row "train --lr 0" $A train --dataset demo --normal-class disc --width 8 --lr 0 --out r4 --device cpu
row "score --lr-z 0" $A $S --out n.csv --lr-z 0
row "score --lr-theta=-1" $A $S --out n.csv --lr-theta=-1
row "train --objective clip --clip=-0.01" $A train --dataset demo --normal-class disc --width 8 --objective clip --clip=-0.01 --out r4 --device cpu
row "train --objective gp --lambda=-10" $A train --dataset demo --normal-class disc --width 8 --objective gp --lambda=-10 --out r4 --device cpu
row "score --method kde --pca-dim 0" $A $S --out n.csv --method kde --pca-dim 0
row "score --batch-images 0" $A $S --out n.csv --batch-images 0
printf '\x00\x00\x08\x03\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00' > zero.idx; mkdir -p zm && cp zero.idx zm/train-images-idx3-ubyte; printf '\x00\x00\x08\x01\x00\x00\x00\x03\x00\x00\x00' > zm/train-labels-idx1-ubyte
row "IDX with 0x0 images" $A train --dataset mnist --data zm --normal-class 0 --out r5 --device cpu
row "train --batch-size 5000 (922 images)" $A train --dataset demo --normal-class disc --width 8 --latent-dim 16 --iterations 2 --n-critic 1 --batch-size 5000 --out r6 --device cpu
row "train --lr NaN" $A train --dataset demo --normal-class disc --width 8 --lr NaN --out r7 --device cpu
row "train --lr 1e30 (diverges, clip)" $A train --dataset demo --normal-class disc --width 8 --latent-dim 16 --iterations 30 --objective clip --lr 1e30 --out r8 --device cpu
mkdir -p r9 && cp run/config.json r9/
row "train --resume, config but no checkpoint" $A train --dataset demo --normal-class disc --width 8 --latent-dim 16 --iterations 20 --out r9 --resume --device cpu
row "train --resume with other settings" $A train --dataset demo --normal-class disc --width 16 --latent-dim 16 --iterations 30 --out run --resume --device cpu
row "train --normal-class 12x" $A train --dataset demo --normal-class 12x --out r10 --device cpu
row "train on mixed sizes --fit resize" $A train --dataset folder --data mixed --fit resize --width 8 --latent-dim 16 --iterations 2 --out r11 --device cpu
row "train on mixed sizes --fit pad" $A train --dataset folder --data mixed --fit pad --width 8 --latent-dim 16 --iterations 2 --out r12 --device cpu
row "score mixed sizes (run fit pad)" $A score --model run --images mixed --out mx.csv --device cpu
grep -o '"dir": *"[^"]*"' run/config.json | head -1
row "score non-UTF-8 file name" $A score --model run --images nonutf --out nu.csv --device cpu
cat nu.csv | od -c | head -3
rm -rf "$W"
