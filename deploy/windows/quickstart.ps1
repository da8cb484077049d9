<#
.SYNOPSIS
    The aibridge demo on Windows, without make or bash: venv + pinned install + `aibridge quickstart`.

.DESCRIPTION
    What `make demo` does on Linux/macOS, for the Windows machine MT4 runs on:

      1. creates .venv (Python >= 3.11; the `py` launcher or `python` on PATH),
      2. installs aibridge and its runtime dependencies pinned by constraints.txt
         (the same pins as `make setup` and the service install; pip shows its progress),
      3. runs `.venv\Scripts\aibridge quickstart`: writes the bundled EURUSD H1 sample to data\,
         `dvc commit`, `dvc repro` (train, evaluate, backtest, register in MLflow), prints the
         summary, then starts the signal server on the champion and drives it with the EA
         emulator for a few hundred bars.

    Run from PowerShell in the cloned directory:

        powershell -ExecutionPolicy Bypass -File deploy\windows\quickstart.ps1

    Afterwards every command goes through the venv's executables, no activation needed:

        .venv\Scripts\dvc repro
        .venv\Scripts\aibridge serve
        .venv\Scripts\mlflow ui --backend-store-uri sqlite:///mlflow.db

    Usage telemetry of MLflow and DVC stays off (MLFLOW_DISABLE_TELEMETRY, .dvc\config).
    Nothing here talks to a broker. Not investment advice.

.PARAMETER Python
    Python interpreter to create the venv with (default: `py -3`, else `python`).
.PARAMETER Dev
    Also install the test stack (the [dev] extra) so `.venv\Scripts\python -m pytest` works.
.PARAMETER NoServe
    Stop after the pipeline and the summary (no server, no EA emulator).
#>
[CmdletBinding()]
param(
    [string]$Python = "",
    [switch]$Dev,
    [switch]$NoServe
)
$ErrorActionPreference = "Stop"
$ProjectDir = Resolve-Path (Join-Path $PSScriptRoot "..\..")
Set-Location $ProjectDir
$venvPython = Join-Path $ProjectDir ".venv\Scripts\python.exe"
$aibridge = Join-Path $ProjectDir ".venv\Scripts\aibridge.exe"

function Invoke-Step([string]$What, [scriptblock]$Block) {
    Write-Host "==> $What"
    & $Block
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE)" }
}

if (-not (Test-Path $venvPython)) {
    Invoke-Step "[1/4] virtualenv .venv" {
        if ($Python) { & $Python -m venv .venv }
        elseif (Get-Command py -ErrorAction SilentlyContinue) { & py -3 -m venv .venv }
        else { & python -m venv .venv }
    }
} else {
    Write-Host "==> [1/4] virtualenv .venv exists"
}
& $venvPython -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)"
if ($LASTEXITCODE -ne 0) {
    throw ".venv has Python < 3.11; delete .venv and rerun with -Python C:\path\to\python3.11.exe"
}

Invoke-Step "[2/4] pip" { & $venvPython -m pip install --upgrade pip }
$target = if ($Dev) { ".[dev]" } else { "." }
Invoke-Step "[3/4] aibridge + dependencies, pinned by constraints.txt (~1.2 GB, a few minutes)" {
    & $venvPython -m pip install -c constraints.txt -e $target
}

$env:MLFLOW_DISABLE_TELEMETRY = "true"
$env:DVC_NO_ANALYTICS = "true"
$env:MPLBACKEND = "Agg"
Write-Host "==> [4/4] .venv\Scripts\aibridge quickstart"
$quickArgs = @("quickstart")
if ($NoServe) { $quickArgs += "--no-serve" }
& $aibridge @quickArgs
exit $LASTEXITCODE
