@echo off
rem Starts dashcam-server with the settings below. Edit them (right click, Edit), then double-click.
rem A DASHCAM_* variable already set in the environment wins over the value here,
rem and flags win over both, e.g. run_server.bat --allow-imei 350612071913857

rem TCP port the cameras connect to: the "Port" in the camera settings of the tracker.
set PORT=5000
rem Folder where downloads go: <folder>\<IMEI>\<date>_<time>_<file>.h265 / .jpg + .json,
rem and <folder>\index.html, a gallery of everything received (open it in a browser).
set OUTPUT_DIR=downloads
rem auto = every camera (DualCam, ADAS, DSM; protocol 5 and 6); or only one family: dualcam, adas, dsm
set MODE=auto
rem 1 = ask each file's metadata (time, trigger, GPS; firmware 03.27.04 and later); 0 = off
set METADATA=0
rem The log is also written here.
set LOG_FILE=logs\dashcam-server.log
rem Log detail: info, or debug to see every packet in hex
set LOG_LEVEL=info

cd /d "%~dp0"
set BIN=%DASHCAM_BIN%
if not defined BIN set BIN=target\release\dashcam-server.exe
if not exist "%BIN%" (
    echo Building dashcam-server ^(release^)...
    cargo build --release --quiet || goto :failed
)
if "%METADATA%"=="1" (set METADATA=true) else (set METADATA=false)
if not defined DASHCAM_PORT set DASHCAM_PORT=%PORT%
if not defined DASHCAM_OUTPUT_DIR set DASHCAM_OUTPUT_DIR=%OUTPUT_DIR%
if not defined DASHCAM_MODE set DASHCAM_MODE=%MODE%
if not defined DASHCAM_METADATA set DASHCAM_METADATA=%METADATA%
if not defined DASHCAM_LOG_FILE set DASHCAM_LOG_FILE=%LOG_FILE%
if not defined RUST_LOG set RUST_LOG=%LOG_LEVEL%
"%BIN%" serve %*
if errorlevel 1 (
    echo.
    echo dashcam-server stopped with an error: see the lines above, or %DASHCAM_LOG_FILE%
    pause
    exit /b 1
)
exit /b 0

:failed
echo Build failed: is Rust installed? See README.md
pause
exit /b 1
