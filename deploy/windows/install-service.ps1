<#
.SYNOPSIS
    Install `aibridge serve` as a Windows service with NSSM (restart on failure, rotated logs).

.DESCRIPTION
    Registers the aibridge signal server as an automatic Windows service through NSSM 2.24
    (https://nssm.cc). NSSM restarts the server whenever it exits, stops it with Ctrl+C (the
    server then finishes in-flight requests and flushes its journal), and writes its console
    output to files it rotates by size and age (AppRotate* settings). The server's own JSON log
    (conf/serve log_path) rotates by itself (log_max_bytes / log_backups).

    Run from an elevated PowerShell in the aibridge checkout, after `aibridge doctor` passes:

        powershell -ExecutionPolicy Bypass -File deploy\windows\install-service.ps1 `
            -Nssm C:\tools\nssm\win64\nssm.exe -TrackingUri http://mlflow.internal:5000

    Re-running the script updates an existing service. Remove with -Uninstall.

.PARAMETER Nssm
    Path to nssm.exe (default: nssm.exe on PATH).
.PARAMETER ServiceName
    Windows service name (default aibridge-serve).
.PARAMETER ProjectDir
    aibridge checkout holding .venv\ and conf\ (default: two levels above this script).
.PARAMETER DataDir
    Writable directory for the journal, logs and downloaded models (default C:\ProgramData\aibridge).
.PARAMETER Model
    Registered model URI(s) to serve (default models:/aibridge-EURUSD-H1@champion).
.PARAMETER TrackingUri
    MLflow tracking/registry URI (default: the project's own SQLite store).
.PARAMETER Port
    ZeroMQ port the EA connects to (default 5555).
.PARAMETER MetricsPort
    Prometheus /metrics and /healthz port (default 9108).
.PARAMETER RotateBytes
    Rotate stdout/stderr files once they reach this size (default 10 MB).
.PARAMETER RotateSeconds
    Rotate stdout/stderr files at least this often (default one day).
.PARAMETER Uninstall
    Stop and remove the service.
#>
[CmdletBinding()]
param(
    [string]$Nssm = "nssm.exe",
    [string]$ServiceName = "aibridge-serve",
    [string]$ProjectDir = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path,
    [string]$DataDir = (Join-Path $env:ProgramData "aibridge"),
    [string[]]$Model = @("models:/aibridge-EURUSD-H1@champion"),
    [string]$TrackingUri = "",
    [int]$Port = 5555,
    [int]$MetricsPort = 9108,
    [int]$RotateBytes = 10485760,
    [int]$RotateSeconds = 86400,
    [switch]$Uninstall
)

$ErrorActionPreference = "Stop"

function Invoke-Nssm {
    param([Parameter(ValueFromRemainingArguments = $true)][string[]]$NssmArgs)
    & $Nssm @NssmArgs
    if ($LASTEXITCODE -ne 0) {
        throw "nssm $($NssmArgs -join ' ') failed with exit code $LASTEXITCODE"
    }
}

$principal = New-Object Security.Principal.WindowsPrincipal(
    [Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw "Run this script from an elevated (Administrator) PowerShell."
}
if (-not (Get-Command $Nssm -ErrorAction SilentlyContinue)) {
    throw "nssm.exe not found at '$Nssm'. Download NSSM 2.24 from https://nssm.cc/download and pass -Nssm <path>."
}

$existing = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue

if ($Uninstall) {
    if ($existing) {
        & $Nssm stop $ServiceName | Out-Null
        Invoke-Nssm remove $ServiceName confirm
        Write-Host "Removed service $ServiceName."
    } else {
        Write-Host "Service $ServiceName is not installed."
    }
    exit 0
}

$exe = Join-Path $ProjectDir ".venv\Scripts\aibridge.exe"
if (-not (Test-Path $exe)) {
    throw "$exe not found. Create the venv first: py -3.11 -m venv .venv; .venv\Scripts\pip install -c constraints.txt -e ."
}
$logDir = Join-Path $DataDir "logs"
New-Item -ItemType Directory -Force -Path $DataDir, $logDir, (Join-Path $DataDir "models") | Out-Null

# The command line `aibridge serve` runs with (every option exists in `aibridge serve --help`).
$serveArgs = @("serve")
foreach ($m in $Model) { $serveArgs += @("--model", $m) }
$serveArgs += @(
    "--host", "127.0.0.1",
    "--port", "$Port",
    "--metrics-port", "$MetricsPort",
    "--journal", "`"$(Join-Path $DataDir 'journal.sqlite')`"",
    "--log-path", "`"$(Join-Path $logDir 'serve.jsonl')`"",
    "--model-cache-dir", "`"$(Join-Path $DataDir 'models')`""
)
if ($TrackingUri) { $serveArgs += @("--tracking-uri", $TrackingUri) }

if (-not $existing) {
    Invoke-Nssm install $ServiceName $exe
}
Invoke-Nssm set $ServiceName Application $exe
Invoke-Nssm set $ServiceName AppParameters ($serveArgs -join " ")
Invoke-Nssm set $ServiceName AppDirectory $ProjectDir
Invoke-Nssm set $ServiceName DisplayName "aibridge signal server"
Invoke-Nssm set $ServiceName Description "Serves LightGBM BUY/SELL/HOLD decisions to the MT4 EA over ZeroMQ."
Invoke-Nssm set $ServiceName Start SERVICE_DELAYED_AUTO_START
# Environment: where writable state lives, plus the tracking URI for `aibridge doctor` parity.
$envExtra = @("AIBRIDGE_HOME=$DataDir", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false", "PYTHONUNBUFFERED=1")
if ($TrackingUri) { $envExtra += "MLFLOW_TRACKING_URI=$TrackingUri" }
Invoke-Nssm set $ServiceName AppEnvironmentExtra @envExtra

# Restart on any exit, after 5 s; a run shorter than 10 s counts as a failed start (throttled).
Invoke-Nssm set $ServiceName AppExit Default Restart
Invoke-Nssm set $ServiceName AppRestartDelay 5000
Invoke-Nssm set $ServiceName AppThrottle 10000

# Stop: Ctrl+C first (SIGINT → graceful drain + journal flush), then escalate.
Invoke-Nssm set $ServiceName AppStopMethodConsole 15000
Invoke-Nssm set $ServiceName AppStopMethodWindow 5000
Invoke-Nssm set $ServiceName AppStopMethodThreads 5000

# Console output to files, rotated by NSSM while the service runs.
Invoke-Nssm set $ServiceName AppStdout (Join-Path $logDir "service-stdout.log")
Invoke-Nssm set $ServiceName AppStderr (Join-Path $logDir "service-stderr.log")
Invoke-Nssm set $ServiceName AppStdoutCreationDisposition 4
Invoke-Nssm set $ServiceName AppStderrCreationDisposition 4
Invoke-Nssm set $ServiceName AppRotateFiles 1
Invoke-Nssm set $ServiceName AppRotateOnline 1
Invoke-Nssm set $ServiceName AppRotateSeconds $RotateSeconds
Invoke-Nssm set $ServiceName AppRotateBytes $RotateBytes

# Windows' own recovery actions as a second line behind NSSM (if nssm.exe itself dies).
& sc.exe failure $ServiceName reset= 86400 actions= restart/5000/restart/5000/restart/30000 | Out-Null

Invoke-Nssm restart $ServiceName
Start-Sleep -Seconds 3
& $Nssm status $ServiceName
Write-Host "Installed $ServiceName. Logs: $logDir. Health: http://127.0.0.1:$MetricsPort/healthz"
