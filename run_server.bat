@echo off
rem Starts dashcam-server with the settings below. Edit them (right click, Edit), then double-click.
rem Extra flags are passed on, e.g. run_server.bat --allow-imei 350612071913857

rem TCP port the cameras connect to: the "Port" in the camera settings of the tracker.
set PORT=5000
rem Folder where downloads go: <folder>\<IMEI>\<date>_<time>_<file>.h265 / .jpg + .json
set OUTPUT_DIR=downloads
rem auto = every camera (DualCam, ADAS, DSM; protocol 5 and 6); or only one family: dualcam, adas, dsm
set MODE=auto
rem 1 = ask each file's metadata (time, trigger, GPS; firmware 03.27.04 and later); 0 = off
set METADATA=0
rem Log detail: info, or debug to see every packet in hex
set LOG_LEVEL=info

cd /d "%~dp0"
set BIN=target\release\dashcam-server.exe
if not exist "%BIN%" (
    echo Building dashcam-server ^(release^)...
    cargo build --release --quiet || goto :failed
)
rem The settings above reach the server as DASHCAM_* variables; flags given on the command line win.
set DASHCAM_PORT=%PORT%
set DASHCAM_OUTPUT_DIR=%OUTPUT_DIR%
set DASHCAM_MODE=%MODE%
set DASHCAM_METADATA=false
if "%METADATA%"=="1" set DASHCAM_METADATA=true
if not defined RUST_LOG set RUST_LOG=%LOG_LEVEL%
"%BIN%" serve %*
exit /b %ERRORLEVEL%

:failed
echo Build failed: is Rust installed? See README.md
pause
exit /b 1
