<#
.SYNOPSIS
    Register scheduled retraining (`aibridge retrain`) as a Windows scheduled task.

.DESCRIPTION
    Fills in aibridge-retrain-task.xml (next to this script) and registers it with
    Register-ScheduledTask: Monday to Friday 22:30 UTC, a missed run catches up, never two at
    once, stopped after 2 hours, below-normal priority. Each run takes the newest MT4 export
    per symbol x timeframe from -Inbox, copies it into the project's data\ when it changed,
    records the data version (dvc add), runs dvc repro and lets the backtest gate decide; the
    signal service picks up a promoted version on its next registry poll.

    Run from an elevated PowerShell in a writable aibridge checkout (a git clone with .venv\):

        powershell -ExecutionPolicy Bypass -File deploy\windows\register-retrain-task.ps1 `
            -Inbox "$env:APPDATA\MetaQuotes\Terminal\<id>\MQL4\Files\exports"

    Results: reports\retrain.jsonl and logs\retrain\*.log in the project; the task's "Last Run
    Result" is the exit code (0 ok or no new data, 1 failed, 2 another run held the lock).
    Remove with -Uninstall. Run once now: Start-ScheduledTask -TaskName aibridge-retrain

.PARAMETER Inbox
    Directory the MT4 exports land in.
.PARAMETER ProjectDir
    Writable aibridge checkout holding .venv\, dvc.yaml and data\ (default: two levels above
    this script).
.PARAMETER TaskName
    Scheduled task name (default aibridge-retrain).
.PARAMETER User
    Account the task runs as (default: the current user; asked for its password).
.PARAMETER Uninstall
    Remove the task.
#>
[CmdletBinding()]
param(
    [string]$Inbox,
    [string]$ProjectDir = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path,
    [string]$TaskName = "aibridge-retrain",
    [string]$User = "$env:USERDOMAIN\$env:USERNAME",
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"

if ($Uninstall) {
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    Write-Host "removed scheduled task $TaskName"
    return
}
if (-not $Inbox) { throw "-Inbox is required (the directory the MT4 exports land in)" }
if (-not (Test-Path -PathType Container $Inbox)) { throw "inbox $Inbox does not exist" }
$python = Join-Path $ProjectDir ".venv\Scripts\python.exe"
if (-not (Test-Path $python)) { throw "$python not found: create the venv and pip install -c constraints.txt -e . first" }
if (-not (Test-Path (Join-Path $ProjectDir "dvc.yaml"))) { throw "$ProjectDir has no dvc.yaml" }

# Dry run first: fails here, not at 22:30, when the project or the inbox is wrong.
& $python -m aibridge.loop retrain --project $ProjectDir --inbox $Inbox --dry-run
if ($LASTEXITCODE -ne 0) { throw "aibridge retrain --dry-run failed (exit $LASTEXITCODE)" }

$template = Get-Content -Raw -Path (Join-Path $PSScriptRoot "aibridge-retrain-task.xml")
$xml = $template.Replace("__PROJECT__", $ProjectDir).Replace("__INBOX__", $Inbox).Replace("__USER__", $User)
$credential = Get-Credential -UserName $User -Message "Password of $User (the task runs when nobody is logged on)"
Register-ScheduledTask -TaskName $TaskName -Xml $xml -User $User `
    -Password $credential.GetNetworkCredential().Password -Force | Out-Null
Write-Host "registered $TaskName: Mon-Fri 22:30 UTC, $python -m aibridge.loop retrain --inbox $Inbox"
